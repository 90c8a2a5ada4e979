"""Where the project's documentation is published, for the links on its block pages."""

from __future__ import annotations

from importlib import metadata

from pydantic import HttpUrl

DISTRIBUTION = "postdicom-flows"


def project_documentation_url(section: str = "") -> HttpUrl | None:
    """The README's ``section`` where the project is published, or ``None`` while it is not.

    Read from the installed package's ``[project.urls] Documentation`` (the
    address of the README), so that publishing the project sets every block's
    link in one place. ``None`` leaves the block page without a link, which is
    better than a link to someone else's repository. An ``HttpUrl``, the type
    Prefect gives a block's ``_documentation_url``; an address that is not a
    valid http(s) URL is refused here, on import, not when the block is registered.
    """
    try:
        urls = metadata.metadata(DISTRIBUTION).get_all("Project-URL") or []
    except metadata.PackageNotFoundError:
        return None
    for entry in urls:
        label, _, url = entry.partition(",")
        if label.strip().lower() == "documentation" and url.strip().startswith(("http://", "https://")):
            return HttpUrl(f"{url.strip()}#{section}" if section else url.strip())
    return None
