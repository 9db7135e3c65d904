"""Deals: moved through a pipeline's stages, with their history; every change is announced on `crm.deals`."""
