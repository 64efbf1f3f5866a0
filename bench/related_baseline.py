"""Today's (before issue 15) related-note candidates, frozen for bench/related_bench.py to compare.

A copy of curation/engine/candidates.py as it was: title words and tags, rarest first, nearest
notes of the same folder filling a short list. Not used by the app.
"""
from __future__ import annotations

import re
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable
from operator import itemgetter

from ingest.notes import is_link_target, link_name, tag_clean

MAX_CANDIDATES = 8
MAX_POSTINGS = 32
MAX_TERMS = 8
WORD = re.compile(r"[^\W\d_][\w]*", re.U)
STOPWORDS = frozenset(
    """a an and are as at be but by for from has have how in into is it its of on or our that
    the their this to was were what when where which who why will with you your notes note
    about vs via part new old draft todo index readme untitled""".split()
)


def _fold(word: str) -> str:
    return word[:-1] if len(word) > 4 and word.endswith("s") and not word.endswith("ss") else word


def title_terms(title: str) -> set[str]:
    return {
        _fold(w) for w in WORD.findall(title.lower()) if len(w) > 2 and w not in STOPWORDS
    }


def tag_terms(tags: Iterable) -> set[str]:
    terms = set()
    for tag in tags or ():
        if not isinstance(tag, str):
            continue
        tag = tag_clean(tag).lower()
        if not tag:
            continue
        terms.add("#" + tag)
        for segment in tag.split("/"):
            if len(segment) > 2:
                terms.add(_fold(segment))
    return terms


def _row(note) -> tuple[str, str, list]:
    if isinstance(note, (tuple, list)):
        path, title, tags = note[0], note[1], note[2]
    elif isinstance(note, dict):
        path, title, tags = note["path"], note.get("title", ""), note.get("tags", [])
    else:
        path, title, tags = note.path, note.title, note.tags
    return path, title or link_name(path), tags if isinstance(tags, list) else []


class CandidateIndex:
    """An inverted index from terms to notes (by position in path order)."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.terms: list[tuple[str, ...]] = []
        self.linkable: list[bool] = []
        self.postings: dict[str, list[int]] = {}
        self.position: dict[str, int] = {}
        self.tag_counts: Counter = Counter()
        self.df: Counter = Counter()

    @classmethod
    def build(cls, notes: Iterable) -> CandidateIndex:
        """From Note objects, dicts or (path, title, tags) rows."""
        index = cls()
        rows = sorted((_row(n) for n in notes), key=lambda r: r[0])
        names = Counter(link_name(path) for path, _, _ in rows)
        postings: dict[str, list[int]] = {}
        df: Counter = Counter()
        per_tag: dict[str, set[str]] = {}
        all_terms = []
        for i, (path, title, tags) in enumerate(rows):
            name = link_name(path)
            terms = title_terms(title)
            if name != title:
                terms |= title_terms(name)
            for tag in tags:
                if isinstance(tag, str):
                    found = per_tag.get(tag)
                    if found is None:
                        found = per_tag[tag] = tag_terms([tag])
                    terms |= found
                    index.tag_counts[tag_clean(tag).lower()] += 1
            index.paths.append(path)
            index.position[path] = i
            linkable = names[name] == 1 and is_link_target(path)
            index.linkable.append(linkable)
            all_terms.append(terms)
            df.update(terms)
            if linkable:  # only linkable notes can be offered as candidates
                for term in terms:
                    postings.setdefault(term, []).append(i)
        index.tag_counts.pop("", None)
        # Each note keeps only its rarest terms: they say the most and bound the work per note.
        # (Ties by the term itself: in set order they would follow the hash seed of the run.)
        def rarity(term: str) -> tuple[int, str]:
            return df[term], term

        index.terms = [tuple(sorted(terms, key=rarity)[:MAX_TERMS]) for terms in all_terms]
        index.postings = postings
        index.df = df
        return index

    def __len__(self) -> int:
        return len(self.paths)

    def taxonomy(self, limit: int = 300) -> list[str]:
        """The vault's existing tags, most used first (ties by name)."""
        ranked = sorted(self.tag_counts.items(), key=lambda kv: (-kv[1], kv[0]))
        return [tag for tag, _ in ranked[:limit]]

    def candidates(self, path: str, *, limit: int = MAX_CANDIDATES,
                   title: str | None = None, tags: list | None = None) -> list[str]:
        me = self.position.get(path)
        if me is not None and title is None and tags is None:
            terms = self.terms[me]
        else:
            found = title_terms(title or link_name(path)) | tag_terms(tags or [])
            terms = tuple(sorted(found, key=lambda t: (self.df.get(t, 0), t))[:MAX_TERMS])
        if me is None:
            me = bisect_left(self.paths, path)
        postings = self.postings
        pool: list[int] = []
        for term in terms:
            notes = postings.get(term)
            if not notes:
                continue
            if len(notes) > MAX_POSTINGS:
                # The notes nearest in path order: neighbours in the same folder first.
                at = bisect_left(notes, me)
                lo = max(0, min(at - MAX_POSTINGS // 2, len(notes) - MAX_POSTINGS))
                notes = notes[lo:lo + MAX_POSTINGS]
            pool += notes
        scores = Counter(pool)  # counted in C: this is the per-note hot path
        scores.pop(me, None)
        # Most shared terms first; a stable sort leaves ties in the order found (rarest term
        # first, then path order), so answers are reproducible.
        best = sorted(scores.items(), key=itemgetter(1), reverse=True)[:limit]
        found = [self.paths[other] for other, _ in best]
        if len(found) < limit:
            found += self._folder_neighbours(me, path, limit - len(found), exclude=set(found))
        return found

    def _folder_neighbours(self, me: int, path: str, n: int, *, exclude: set) -> list[str]:
        """Notes next to this one in its own folder: a weak but cheap relation, used last."""
        folder = path.rsplit("/", 1)[0] + "/" if "/" in path else ""
        paths, linkable = self.paths, self.linkable
        present = me < len(paths) and paths[me] == path
        lo, hi = me - 1, me + 1 if present else me
        found: list[str] = []
        for _ in range(2 * MAX_CANDIDATES):
            for other in (lo, hi):
                if len(found) < n and 0 <= other < len(paths) and linkable[other]:
                    candidate = paths[other]
                    if (candidate.startswith(folder) and "/" not in candidate[len(folder):]
                            and candidate not in exclude):
                        found.append(candidate)
            lo, hi = lo - 1, hi + 1
        return found


def build_index(notes: Iterable) -> CandidateIndex:
    return CandidateIndex.build(notes)


def candidates_for(note, index: CandidateIndex, *, limit: int = MAX_CANDIDATES) -> list[str]:
    """Paths of up to `limit` notes likely related to `note` (a path or an object with .path).

    Never the note itself; never a note whose link name is ambiguous or breaks a wikilink.
    """
    path = note if isinstance(note, str) else note.path
    return index.candidates(path, limit=limit)
