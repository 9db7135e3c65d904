"""`crm contacts import FILE.csv`: the command, its progress bar and its summary.

Exit codes: 0 every row imported (or, with `--dry-run`, would be); 1 some rows were refused (see the
errors file); 2 the import could not run or was stopped (a bad mapping, an unreadable file, a key the
server refuses, the server away).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from services.contacts.importer.api import ContactsApi, ImportRefused
from services.contacts.importer.mapping import ColumnMapping, MappingError
from services.contacts.importer.reading import DEFAULT_ENCODING, CsvProblem, CsvSource
from services.contacts.importer.run import MAX_BATCH_RECORDS, ImportStopped, Summary, import_csv

_USAGE = 2


def _fail(message: str) -> typer.Exit:
    typer.echo(f"crm contacts import: {message}", err=True)
    return typer.Exit(_USAGE)


def _report(summary: Summary, *, dry_run: bool) -> None:
    verb = "would be " if dry_run else ""
    typer.echo(
        f"{summary.rows} rows: {summary.created} {verb}created, {summary.updated} {verb}updated, "
        f"{summary.unchanged} unchanged, {summary.failed} refused"
    )
    if dry_run:
        typer.echo("Dry run: nothing was written.")
    if summary.errors_path is not None:
        typer.echo(f"Refused rows, with line, column, field and reason: {summary.errors_path}")


def import_contacts(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="The CSV file, header first.")
    ],
    map_: Annotated[
        list[str] | None,
        typer.Option(
            "--map",
            help='"Column=field", repeated: a standard field (email, tags, …), properties.<key>, '
            'external_ids.<system>, or nothing ("Notes=") to leave the column out. Columns named like a '
            "field map themselves.",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check every row as the import would, and write nothing.")
    ] = False,
    url: Annotated[
        str,
        typer.Option(
            envvar="CRM_CONTACTS_URL",
            help="The contacts service, or the embedded server (`crm dev`) it runs in.",
        ),
    ] = "http://127.0.0.1:8000",
    key: Annotated[
        str | None, typer.Option(envvar="CRM_KEY", help="An API key with contacts:write (and contacts:read).")
    ] = None,
    ignore_unmapped: Annotated[
        bool, typer.Option("--ignore-unmapped", help="Leave out columns that map to no field.")
    ] = False,
    separator: Annotated[
        str, typer.Option(help="Splits multi-valued cells: emails, tags, external ids, multi-enums.")
    ] = ";",
    delimiter: Annotated[str, typer.Option(help="The CSV delimiter.")] = ",",
    encoding: Annotated[str, typer.Option(help="The file's encoding.")] = DEFAULT_ENCODING,
    errors: Annotated[
        Path | None,
        typer.Option(help="Where refused rows go (default: FILE with .errors.csv for .csv)."),
    ] = None,
    batch_size: Annotated[
        int, typer.Option(min=1, max=MAX_BATCH_RECORDS, help="Rows per request to the batch upsert.")
    ] = MAX_BATCH_RECORDS,
) -> None:
    """Import contacts from a CSV file through the batch upsert: matched by email or external id,
    created or updated, one result per row."""
    if not key:
        raise _fail("give an API key with --key or CRM_KEY")
    if len(delimiter) != 1:
        raise _fail("the delimiter is one character, e.g. , or ; or a tab")
    errors_path = errors or file.with_name(f"{file.stem}.errors.csv")
    api = ContactsApi(url, key)
    console = Console(stderr=True)
    try:
        with CsvSource(file, encoding=encoding, delimiter=delimiter) as source:
            mapping = ColumnMapping.build(
                source.headers,
                map_ or [],
                api.property_types(),
                ignore_unmapped=ignore_unmapped,
                separator=separator,
            )
            with Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TextColumn("{task.fields[rows]} rows"),
                TimeRemainingColumn(),
                console=console,
                transient=False,
            ) as progress:
                task = progress.add_task("Checking" if dry_run else "Importing", total=source.size, rows=0)

                def show(summary: Summary) -> None:
                    progress.update(task, completed=source.bytes_read, rows=summary.rows)

                summary = import_csv(
                    source,
                    mapping,
                    api,
                    errors_path=errors_path,
                    dry_run=dry_run,
                    batch_size=batch_size,
                    on_progress=show,
                )
                progress.update(task, completed=source.size, rows=summary.rows)
    except (MappingError, CsvProblem, ImportRefused) as exc:
        raise _fail(str(exc)) from exc
    except ImportStopped as exc:
        _report(exc.summary, dry_run=dry_run)
        raise _fail(
            f"stopped at line {exc.line}, which and what follows were not sent: {exc.reason}"
        ) from exc
    finally:
        api.close()
    _report(summary, dry_run=dry_run)
    if summary.failed:
        raise typer.Exit(1)
