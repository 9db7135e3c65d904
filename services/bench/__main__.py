"""`python -m services.bench`: the benchmark command without the rest of `crm`."""

from services.bench.cli import app

app(prog_name="python -m services.bench")
