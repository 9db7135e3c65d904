"""`crm contacts import`: a CSV file into contacts, through the batch upsert, over HTTP.

The importer is a client of the public API, like any other app: it works against the embedded and the
distributed deployment alike, and every row goes the way a `POST /v1/contacts/batch/upsert` record goes
(validation, matching by identity, history, events). `mapping` turns a row into a record, `reading`
streams the file, `api` sends batches, `run` ties them together and `command` is the CLI.
"""
