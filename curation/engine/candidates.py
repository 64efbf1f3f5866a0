"""Related-note candidates: notes ranked by what they say, offered to the model to link.

Each note is read once into its words (`note_words`: frontmatter, code, links, addresses and
markup stripped; CJK runs cut into character bigrams so Chinese, Japanese and Korean match;
stop words dropped) and those words are kept per note with the content hash they came from
(`NoteWords`), so a vault's index is built from stored words and only notes changed since are
read again (`vault_index`). The built index is kept on disk (settings.CURATION_INDEX_DIR, by a
fingerprint of the vault's paths and content hashes) and mapped back by the next job, which
builds it again only when a note has changed. The index ranks a note's candidates by:

- BM25 over the notes' words (the `bm25s` library), as a share of the note's score against
  itself, so 1.0 is "says the same" and the minimum relevance means the same in every vault;
  words in a quarter of the notes or more (template boilerplate) are dropped first;
- unlinked mentions, both ways: this note's words hold the other's name, or the other's hold
  this one's (what Obsidian's "unlinked mentions" pane shows);
- co-citation: other notes that link to both;
- backlinks: the other note links to this one, so its author may want the link back;
- the links of the notes most like this one (notes on one subject link to the same pages);
- for notes already related by the above: a nudge for the same folder, and a larger one for a
  folder note (`Sync.md` and the notes under `Sync/`).

A note's tags count as words of it (`#ai` and `#ai/agents` for `ai/agents`), so notes that
share a rare tag meet even where their words differ; a heading's words count twice.

A note gets no candidates when nothing reaches MIN_RELEVANCE, never itself, never a note its
body already links to (the author linked it), and never a note whose link name breaks a
wikilink. A note whose own name breaks a wikilink gets no candidates either: a link is written
on both notes, and it could not hold its end. Notes that share a name (`Clipper/Templates.md`,
`Plugins/Templates.md`) are candidates: a link to one is written with the path only it has,
as Obsidian writes it.

    index = vault_index(vault_id)          # in a job; or CandidateIndex.build(rows) in memory
    index.candidates("folder/Note.md")      # paths, best first
    index.taxonomy(300)                     # the vault's tags, most used first
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
import unicodedata
from array import array
from collections import Counter
from collections.abc import Iterable

import bm25s
import numpy as np
from bm25s import scoring
from django.conf import settings
from django.db import models, transaction
from django.db.models import Value
from django.db.models.functions import Substr

from curation.models import NoteWords
from ingest.models import Note
from ingest.notes import (
    CODE,
    body_links,
    is_link_target,
    link_key,
    link_name,
    tag_clean,
    tag_prefixes,
)

log = logging.getLogger(__name__)

MAX_CANDIDATES = 8
MAX_WORDS = 64  # distinct words kept per note (its most frequent): bounds a 100,000-note index
MIN_RELEVANCE = 0.05  # share of the note's own BM25 score (or the equivalent in mentions)
COMMON_SHARE = 0.25  # a word in more than this share of the notes (template boilerplate,
COMMON_MIN = 4  # the vault's own name) says nothing about any pair: dropped, past this many
MENTIONS_MAX = 50  # a name whose rarest word is in more notes is no mention: it says little,
# and it would make a pair with every one of them
QUERY_WORDS = 32  # a note is compared by its rarest words: they say the most, and cost least
MENTION = 0.25  # this note's words hold the other's name
MENTIONED = 0.25  # the other's words hold this note's name
COCITED = 0.5  # other notes link to both (scaled by how many, up to 3)
SAME_FOLDER = 0.05
TAG_WEIGHT = 2  # a tag counts as a word written this many times
HEADING_WEIGHT = 2  # a heading's words count this many times: it names what its section is about
FOLDER_NOTE = 0.5  # the other note is named as a folder this one is in (its folder note), or
# this one is named as a folder the other is in (the notes of a topic and its overview)
LINKED_FROM = 0.5  # the other note links here: the author may want the link back
SIMILAR_LINKS = 0.75  # a note much like this one links to the other (scaled by how alike)
SIMILAR_NOTES = 20  # how many of the most alike notes lend their links
LENT_UNSAID = 0.5  # a lent link to a note sharing no words with this one counts this much,
LENT_SAID = 0.2  # and in full from this BM25 share on
SAMPLE_BODY_CHARS = 12_000  # body read for a sampled note without stored words (an estimate)
BUILD_PART = 5_000  # notes scored at a time while the BM25 matrix is built
STALE_CHUNK = 500  # notes read again per query when their words are stored
MAX_CITING_LINKS = 100  # a note linking to more (an index page) says little about any pair

WIKILINK = re.compile(r"!?\[\[[^\]\n]*\]\]")
MD_LINK = re.compile(r"(!?)\[([^\]\n]*)\]\([^)\n]*\)")
URL = re.compile(r"\b(?:https?|ftp|file)://\S+|\bwww\.\S+")
MARKUP = re.compile(r"<[^>\n]*>|\{\{[^}\n]*\}\}|<%.*?%>|%%.*?%%", re.S)
BLOCK_ID = re.compile(r"\s\^[\w-]+$", re.M)
HEADING = re.compile(r"^[ ]{0,3}#{1,6}[ \t]+(.+)$", re.M)
WORD = re.compile(r"[^\W_]+", re.U)
CJK = re.compile(
    "[\u1100-\u11ff\u3040-\u30ff\u3130-\u318f\u3400-\u4dbf\u4e00-\u9fff"
    "\ua960-\ua97f\uac00-\ud7af\uf900-\ufaff\uff66-\uff9f]+"
)
STOPWORDS = frozenset(
    """a about after all also am an and any are as at be been but by can could did do does for
    from had has have he her his how i if in into is it its just may me more my no not of on
    one or other our out she so some such than that the their them then there these they this
    those to too two use used using very was we were what when where which while who why will
    with would you your etc via de la le les des du un une et est en el los las y que del por
    der die das und ist ein eine einer eines zu den dem des im mit von für auf nicht sie es
    oder wie auch als bei sich wenn noch nur aus kann wird werden sind dass""".split()
)


def clean_text(body: str) -> str:
    """The note's prose: no code, links, addresses, HTML, template tags or block ids."""
    text = CODE.sub(" ", body)
    text = WIKILINK.sub(" ", text)
    text = MD_LINK.sub(lambda m: " " if m.group(1) else m.group(2), text)
    text = URL.sub(" ", text)
    text = MARKUP.sub(" ", text)
    return BLOCK_ID.sub(" ", text)


def words(text: str) -> list[str]:
    """Lower-case words, stop words and numbers dropped; a CJK run becomes its bigrams."""
    found: list[str] = []
    for word in WORD.findall(unicodedata.normalize("NFKC", text).lower()):
        if CJK.search(word) is None:
            if len(word) > 1 and word not in STOPWORDS and not word.isdigit():
                found.append(word)
            continue
        at = 0
        for run in CJK.finditer(word):
            rest = word[at : run.start()]
            if len(rest) > 1 and rest not in STOPWORDS and not rest.isdigit():
                found.append(rest)
            cjk = run.group(0)
            found.extend([cjk] if len(cjk) == 1 else [cjk[i : i + 2] for i in range(len(cjk) - 1)])
            at = run.end()
        rest = word[at:]
        if len(rest) > 1 and rest not in STOPWORDS and not rest.isdigit():
            found.append(rest)
    return found


WORDS_FORMAT = 3  # raise when note_words changes what it keeps: stored words are read again


def note_words(*, path: str, title: str, body: str) -> str:
    """What the index keeps of a note: its MAX_WORDS most frequent words as `word:count ...`,
    a heading's words counted HEADING_WEIGHT times."""
    prose = clean_text(body)
    counts = Counter(words(prose))
    for heading in HEADING.findall(prose):
        for word in words(heading):
            counts[word] += HEADING_WEIGHT - 1
    counts.update(dict.fromkeys(words(f"{title} {link_name(path)}"), 1))  # name, title: once
    kept = counts.most_common(MAX_WORDS)  # ties: first seen first
    return " ".join(w if n == 1 else f"{w}:{n}" for w, n in kept)


def note_links(body: str) -> str:
    """The note's body link targets (see body_links), one a line: what it already links to."""
    return "\n".join(dict.fromkeys(body_links(body)))


class _BM25(bm25s.BM25):
    """bm25s's BM25, its matrix built part by part (see build_in_parts)."""

    def build_in_parts(self, docs: _Docs, *, words: int, part: int = BUILD_PART) -> dict:
        """What bm25s's build_index_from_ids returns (the same scores, from bm25s's own idf and
        term-frequency functions), built `part` notes at a time and written straight into the
        column-ordered matrix: bm25s holds the whole (score, note, word) arrays and their sort
        order at once, which puts a 100,000-note vault past the memory bound."""
        if self.method in self.methods_requiring_nonoccurrence:
            raise ValueError(f"{self.method} is not built in parts")
        n = len(docs)
        lengths = np.zeros(n, dtype=np.int64)  # words per note, repeats counted (bm25s's doc_len)
        per_word = np.zeros(words, dtype=np.int64)  # notes holding each word (its column length)
        for start in range(0, n, part):
            stop = min(n, start + part)
            ids, counts = docs.span(start, stop)
            per_word += np.bincount(ids, minlength=words)
            totals = np.concatenate(([0], np.cumsum(counts, dtype=np.int64)))
            lengths[start:stop] = np.diff(totals[docs.ptr[start : stop + 1] - docs.ptr[start]])
        idf = scoring._build_idf_array(
            doc_frequencies=dict(enumerate(per_word.tolist())), n_docs=n,
            compute_idf_fn=scoring._select_idf_scorer(self.idf_method), dtype=self.dtype,
        )  # fmt: skip
        indptr = np.zeros(words + 1, dtype=np.int64)
        np.cumsum(per_word, out=indptr[1:])
        data = np.empty(int(indptr[-1]), dtype=self.dtype)
        indices = np.empty(int(indptr[-1]), dtype=np.int32)
        free = indptr[:-1].copy()  # next free place in each column
        average = float(lengths.mean()) if n else 0.0
        del lengths
        for start in range(0, n, part):
            stop = min(n, start + part)
            scores, notes, cols = scoring._build_scores_and_indices_for_matrix(
                corpus_token_ids=docs.slice(start, stop), idf_array=idf, avg_doc_len=average,
                doc_frequencies={0: len(docs.span(start, stop)[0])},  # (only its sum is read)
                k1=self.k1, b=self.b, delta=self.delta, nonoccurrence_array=None,
                method=self.method, dtype=self.dtype, int_dtype=self.int_dtype,
                show_progress=False,
            )  # fmt: skip
            order = np.argsort(cols, kind="stable")  # notes stay in order within a column
            cols = cols[order]
            in_part = np.bincount(cols, minlength=words)
            first = np.cumsum(in_part) - in_part
            at = free[cols] + (np.arange(len(cols)) - first[cols])
            data[at] = scores[order]
            indices[at] = notes[order] + start
            free += in_part
            del scores, notes, cols, order, at
            _release_freed_memory()
        return {"data": data, "indices": indices, "indptr": indptr, "num_docs": n}


class _Docs:
    """The notes' kept word ids for bm25s, one list per note, made as bm25s reads them from
    flat arrays: a 100,000-note vault never holds a Python list per word. `ids` is -1 where
    the word was dropped."""

    def __init__(self, ids: np.ndarray, counts: np.ndarray, ptr: np.ndarray):
        self.ids, self.counts, self.ptr = ids, counts, ptr

    def __len__(self) -> int:
        return len(self.ptr) - 1

    def __iter__(self):
        ids, counts, ptr = self.ids, self.counts, self.ptr
        for i in range(len(ptr) - 1):
            words, repeat = ids[ptr[i] : ptr[i + 1]], counts[ptr[i] : ptr[i + 1]]
            kept = words >= 0
            yield np.repeat(words[kept], repeat[kept]).tolist()

    def slice(self, start: int, stop: int) -> _Docs:
        """Notes start..stop-1 (numbered from 0 again)."""
        return _Docs(self.ids, self.counts, self.ptr[start : stop + 1])

    def span(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """The kept word ids of notes start..stop-1, and every entry's count (0 if dropped)."""
        ids = self.ids[self.ptr[start] : self.ptr[stop]]
        return ids[ids >= 0], self.counts[self.ptr[start] : self.ptr[stop]] * (ids >= 0)


def _release_freed_memory() -> None:
    """Hand memory freed so far back to the system (glibc's malloc_trim): building a large
    vault's index frees many small blocks between phases, which the allocator would otherwise
    keep, so the worker's resident size would hold each phase's peak on top of the next."""
    if _TRIM is not None:
        _TRIM(0)


def _malloc_trim():
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to release this way
        return None


_TRIM = _malloc_trim()


def _csr(pairs: array, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(pointer, values) of the sorted, unique (row, value) pairs, flat as [r0, v0, r1, v1...]."""
    flat = np.frombuffer(pairs, dtype=np.int32).reshape(-1, 2) if pairs else np.zeros((0, 2),
                                                                                     np.int32)
    flat = np.unique(flat, axis=0) if len(flat) else flat
    ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(flat[:, 0], minlength=n), out=ptr[1:])
    return ptr, np.ascontiguousarray(flat[:, 1])


class CandidateIndex:
    """The vault's notes, their words in a bm25s index, their names and their links."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.position: dict[str, int] = {}
        self.tag_counts: Counter = Counter()
        self.rank = np.zeros(0, dtype=np.int32)  # place in path order, for ties
        self.linkable = np.zeros(0, dtype=bool)
        self.folder = np.zeros(0, dtype=np.int32)
        self.name_part = np.zeros(0, dtype=np.int32)  # the folder name a note has, or -1
        self.bm25: bm25s.BM25 | None = None
        empty = (np.zeros(1, dtype=np.int64), np.zeros(0, dtype=np.int32))
        self.word_ptr, self.words = empty
        self.df = np.zeros(0, dtype=np.int32)
        self.mentions = self.mentioned_by = self.links_out = self.links_in = empty
        self.folder_parts = empty  # per folder, the names of the folders on its path

    def __len__(self) -> int:
        return len(self.paths)

    @classmethod
    def build(cls, notes: Iterable) -> CandidateIndex:
        """From (path, title, tags, words, links) rows (see note_words / note_links), dicts or
        objects with those names, or (path, title, tags, body) rows read here. The rows are
        read once, in any order."""
        index = cls()
        vocab: dict[str, int] = {}
        ids, counts, ptr = array("i"), array("B"), array("q", [0])
        link_texts: list[str] = []
        folders: dict[str, int] = {}
        folder = array("i")
        for path, _title, tags, text, links in (_row(n) for n in notes):
            index.paths.append(path)
            folder.append(folders.setdefault(path.rsplit("/", 1)[0] if "/" in path else "",
                                             len(folders)))  # fmt: skip
            seen: set[str] = set()
            for tag in tags:
                cleaned = tag_clean(tag).lower() if isinstance(tag, str) else ""
                if not cleaned:
                    continue
                index.tag_counts[cleaned] += 1
                # A tag is a word of its note (`#ai/agents`, and `#ai` it shares with broader
                # ones); no word of a body starts with `#`.
                for word in ("#" + branch for branch in tag_prefixes(cleaned)):
                    if word not in seen:
                        seen.add(word)
                        ids.append(vocab.setdefault(word, len(vocab)))
                        counts.append(TAG_WEIGHT)
            for item in text.split():
                word, colon, count = item.rpartition(":")
                if not colon:
                    word, count = item, "1"
                if word in seen:  # once a note: stored words are; a row made by hand may not be
                    continue
                seen.add(word)
                ids.append(vocab.setdefault(word, len(vocab)))
                # At least once: a word kept with no count would leave a hole in the matrix.
                counts.append(max(1, min(int(count), 255)) if count.isdigit() else 1)
            ptr.append(len(ids))
            link_texts.append(links)
        n = len(index.paths)
        _release_freed_memory()  # what reading the rows left behind
        index.position = {p: i for i, p in enumerate(index.paths)}
        index.rank = np.empty(n, dtype=np.int32)
        index.rank[sorted(range(n), key=index.paths.__getitem__)] = np.arange(n, dtype=np.int32)
        alone = Counter(link_key(p) for p in index.paths)  # no other path but by case/form
        index.linkable = np.array([is_link_target(p) and alone[link_key(p)] == 1
                                   for p in index.paths], dtype=bool)  # fmt: skip
        del alone
        index.folder = np.frombuffer(folder, dtype=np.int32) if n else index.folder
        # Folder notes: each folder's path parts (as link keys), and the note named as one.
        part_key: dict[str, int] = {}
        parts = array("i")  # (folder, part) pairs
        for name, at in folders.items():
            for part in name.split("/") if name else ():
                parts.extend((at, part_key.setdefault(link_key(part), len(part_key))))
        index.folder_parts = _csr(parts, len(folders))
        index.name_part = np.array([part_key.get(link_key(link_name(p)), -1)
                                    for p in index.paths], dtype=np.int32)  # fmt: skip
        del part_key, parts

        # Words: a word in one note can match no other; one in most notes says nothing.
        word_ids = np.frombuffer(ids, dtype=np.int32) if ids else np.zeros(0, np.int32)
        word_counts = np.frombuffer(counts, dtype=np.uint8) if counts else np.zeros(0, np.uint8)
        doc_ptr = np.frombuffer(ptr, dtype=np.int64)
        df = np.bincount(word_ids, minlength=len(vocab))
        keep = (df >= 2) & (df <= max(COMMON_MIN, COMMON_SHARE * n))
        new_id = (np.cumsum(keep) - 1).astype(np.int32)
        kept_ids = np.where(keep[word_ids], new_id[word_ids], -1).astype(np.int32)
        index.words, index.word_ptr = kept_ids, doc_ptr  # each note's query
        index.df = df[keep].astype(np.int32)
        kept_words = int(keep.sum())

        # Names: a note is mentioned where all the words of its name are among another's.
        # A name whose rarest word is in many notes would be "mentioned" by all of them.
        by_rarest: dict[int, list[tuple[int, frozenset]]] = {}
        # A name word no other note holds (`5x5` of `5x5 strength program`) means no note
        # mentions the name: matching the rest of it (`program`) would be a false mention.
        # A word in most notes is left out of the name instead, as a stop word is.
        common = max(COMMON_MIN, COMMON_SHARE * n)
        for i, path in enumerate(index.paths):
            name = [vocab.get(w) for w in words(link_name(path))]
            if any(w is None or (not keep[w] and df[w] <= common) for w in name):
                continue
            name_words = frozenset(int(new_id[w]) for w in name if keep[w])
            rarest = min(name_words, key=index.df.__getitem__) if name_words else None
            if rarest is None or index.df[rarest] > MENTIONS_MAX:
                continue
            by_rarest.setdefault(rarest, []).append((i, name_words))
        # Only the kept word ids are needed from here: free the rest before bm25s builds.
        del vocab, df, keep, new_id, word_ids, ids
        _release_freed_memory()

        if n and kept_words:
            index.bm25 = _BM25(csc_backend="numpy")
            index.bm25.scores = index.bm25.build_in_parts(
                _Docs(kept_ids, word_counts, doc_ptr), words=kept_words
            )
        del counts, word_counts

        _release_freed_memory()
        mentions = array("i")
        for i in range(n):
            mine = kept_ids[doc_ptr[i] : doc_ptr[i + 1]].tolist()
            found = [by_rarest[w] for w in mine if w in by_rarest]
            if not found:
                continue
            mine_set = set(mine)
            for group in found:
                for other, name_words in group:
                    if other != i and name_words <= mine_set:
                        mentions.extend((i, other))
        index.mentions = _csr(mentions, n)
        flipped = np.frombuffer(mentions, dtype=np.int32).reshape(-1, 2)[:, ::-1]
        index.mentioned_by = _csr(array("i", flipped.ravel().tobytes()), n)

        # Links: resolved by name (or path) as Obsidian does, ignoring case and Unicode form.
        target: dict[str, int | None] = {}
        for i, path in enumerate(index.paths):
            bare = path[:-3] if path.lower().endswith(".md") else path
            for key in {link_key(link_name(path)), link_key(bare)}:
                target[key] = None if key in target and target[key] != i else i
        links, back = array("i"), array("i")
        for i, text in enumerate(link_texts):
            for link in text.splitlines():
                key = link_key(link.strip().lstrip("/"))
                other = target.get(key[:-3] if key.endswith(".md") else key)
                if other is not None and other != i:
                    links.extend((i, other))
                    back.extend((other, i))
        index.links_out, index.links_in = _csr(links, n), _csr(back, n)
        return index

    _ARRAYS = ("rank", "linkable", "folder", "name_part", "word_ptr", "words", "df")
    _TABLES = ("mentions", "mentioned_by", "links_out", "links_in", "folder_parts")

    def save(self, folder: str) -> None:
        """Write the index into `folder` (new, empty) as .npy files and one JSON file."""
        arrays = {name: getattr(self, name) for name in self._ARRAYS}
        for name in self._TABLES:
            arrays[f"{name}.ptr"], arrays[f"{name}.values"] = getattr(self, name)
        if self.bm25 is not None:
            for name in ("data", "indices", "indptr"):
                arrays[f"bm25.{name}"] = self.bm25.scores[name]
        for name, values in arrays.items():
            np.save(os.path.join(folder, f"{name}.npy"), values, allow_pickle=False)
        with open(os.path.join(folder, "index.json"), "w", encoding="utf-8") as f:
            json.dump({"paths": self.paths, "tags": self.tag_counts,
                       "bm25": self.bm25 is not None}, f, ensure_ascii=False)  # fmt: skip

    @classmethod
    def load(cls, folder: str) -> CandidateIndex:
        """An index saved by `save`; its arrays are mapped from the files, not read into memory
        (the workers on one machine share the pages)."""
        with open(os.path.join(folder, "index.json"), encoding="utf-8") as f:
            meta = json.load(f)

        def array_of(name: str) -> np.ndarray:
            return np.load(os.path.join(folder, f"{name}.npy"), mmap_mode="r", allow_pickle=False)

        index = cls()
        index.paths = meta["paths"]
        index.position = {p: i for i, p in enumerate(index.paths)}
        index.tag_counts = Counter(meta["tags"])
        for name in cls._ARRAYS:
            setattr(index, name, array_of(name))
        for name in cls._TABLES:
            setattr(index, name, (array_of(f"{name}.ptr"), array_of(f"{name}.values")))
        if meta["bm25"]:
            index.bm25 = _BM25(csc_backend="numpy")
            index.bm25.scores = {name: array_of(f"bm25.{name}")
                                 for name in ("data", "indices", "indptr")}  # fmt: skip
            index.bm25.scores["num_docs"] = len(index.paths)
        return index

    @staticmethod
    def _row_of(table: tuple[np.ndarray, np.ndarray], i: int) -> np.ndarray:
        ptr, values = table
        return values[ptr[i] : ptr[i + 1]]

    def taxonomy(self, limit: int = 300) -> list[str]:
        """The vault's existing tags, most used first (ties by name)."""
        ranked = sorted(self.tag_counts.items(), key=lambda kv: (-kv[1], kv[0]))
        return [tag for tag, _ in ranked[:limit]]

    def linked(self, path: str) -> list[str]:
        """The notes this one's body already links to."""
        me = self.position.get(path)
        return [] if me is None else [self.paths[i] for i in self._row_of(self.links_out, me)]

    def scores(self, me: int) -> tuple[np.ndarray, np.ndarray]:
        """(notes, relevance) of the notes related to note `me`, unordered; only the notes
        that share a word, a mention or a citing note are looked at, never the whole vault."""
        row = self._row_of
        parts: list[tuple[np.ndarray, np.ndarray]] = []
        query = row((self.word_ptr, self.words), me)
        query = query[query >= 0]
        if self.bm25 is not None and len(query):
            if len(query) > QUERY_WORDS:
                query = query[np.argsort(self.df[query], kind="stable")[:QUERY_WORDS]]
            matrix = self.bm25.scores  # bm25s's BM25 weight of each (word, note)
            spans = [(matrix["indptr"][w], matrix["indptr"][w + 1]) for w in query.tolist()]
            notes = np.concatenate([matrix["indices"][a:b] for a, b in spans])
            weights = np.concatenate([matrix["data"][a:b] for a, b in spans])
            own = float(weights[notes == me].sum())
            if own > 0:  # as a share of the note's score against itself
                parts.append((notes, weights / own))
                parts.extend(self._similar_links(me, notes, weights / own))
        for table, weight in ((self.mentions, MENTION), (self.mentioned_by, MENTIONED),
                              (self.links_in, LINKED_FROM)):  # fmt: skip
            found = row(table, me)
            parts.append((found, np.full(len(found), weight, dtype=np.float32)))
        cited = [row(self.links_out, c) for c in row(self.links_in, me).tolist()
                 if len(row(self.links_out, c)) <= MAX_CITING_LINKS]  # fmt: skip
        if cited:
            found, times = np.unique(np.concatenate(cited), return_counts=True)
            parts.append((found, COCITED * np.minimum(times, 3) / 3))
        if not parts:
            return np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.float32)
        notes = np.concatenate([n for n, _ in parts])
        weights = np.concatenate([w for _, w in parts]).astype(np.float32)
        notes, at = np.unique(notes, return_inverse=True)
        score = np.bincount(at, weights=weights).astype(np.float32)
        keep = (score >= MIN_RELEVANCE) & self.linkable[notes] & (notes != me)
        score[self.folder[notes] == self.folder[me]] += SAME_FOLDER
        score[self._folder_notes(me, notes)] += FOLDER_NOTE
        keep &= ~np.isin(notes, row(self.links_out, me))  # the author already linked them
        return notes[keep], score[keep]

    def _folder_notes(self, me: int, notes: np.ndarray) -> np.ndarray:
        """Which of `notes` are named as a folder note `me` is in (`Sync.md` for
        `Sync/Regions.md`, or for `Sync/Setup/Headless.md`), or are in a folder named as
        `me`: Obsidian's folder notes, the overview of a topic and its notes."""
        row = self._row_of
        mine = row(self.folder_parts, int(self.folder[me]))
        near = np.isin(self.name_part[notes], mine) if len(mine) else np.zeros(len(notes), bool)
        name = int(self.name_part[me])
        if name >= 0 and len(notes):
            folders, at = np.unique(self.folder[notes], return_inverse=True)
            under = [name in row(self.folder_parts, f) for f in folders.tolist()]
            near |= np.array(under, dtype=bool)[at]
        return near

    def _similar_links(self, me: int, notes: np.ndarray, weights: np.ndarray) -> list:
        """What the notes most like this one link to: notes on one subject tend to link to the
        same pages, which a note's own words may never name. Each of the SIMILAR_NOTES most
        alike lends its links, weighted by how alike (its BM25 share, at most 1). A lent link
        to a note that shares no words with this one counts LENT_UNSAID of that; one to a
        note whose share reaches LENT_SAID, in full (in a small vault of unlike notes, the
        most alike are barely alike, and their links would lead anywhere)."""
        if not SIMILAR_LINKS:
            return []
        alike, at = np.unique(notes, return_inverse=True)
        share = np.minimum(np.bincount(at, weights=weights), 1.0)
        share[alike == me] = 0
        parts = []
        for j in np.argsort(-share, kind="stable")[:SIMILAR_NOTES].tolist():
            links = self._row_of(self.links_out, int(alike[j]))
            if share[j] > 0 and 0 < len(links) <= MAX_CITING_LINKS:
                at_link = np.minimum(np.searchsorted(alike, links), len(alike) - 1)
                said = np.where(alike[at_link] == links, share[at_link], 0.0)
                trust = LENT_UNSAID + (1 - LENT_UNSAID) * np.minimum(said / LENT_SAID, 1.0)
                parts.append((links, (SIMILAR_LINKS * share[j] * trust).astype(np.float32)))
        return parts

    def candidates(self, path: str, *, limit: int = MAX_CANDIDATES) -> list[str]:
        """Paths of up to `limit` notes related to `path`, best first (ties in path order)."""
        me = self.position.get(path)
        if me is None or not self.linkable[me]:
            return []  # it could not hold its end of a link
        notes, score = self.scores(me)
        best = np.lexsort((self.rank[notes], -score))[:limit]
        return [self.paths[i] for i in notes[best].tolist()]


def _row(note) -> tuple[str, str, list, str, str]:
    if isinstance(note, (tuple, list)):
        values = dict(zip(("path", "title", "tags", "words", "links"), note, strict=False))
        if len(note) == 4:  # (path, title, tags, body)
            values = {"path": note[0], "title": note[1], "tags": note[2], "body": note[3]}
    elif isinstance(note, dict):
        values = note
    else:
        values = {k: getattr(note, k) for k in ("path", "title", "tags", "body")
                  if hasattr(note, k)}  # fmt: skip
    path = values["path"]
    title = values.get("title") or link_name(path)
    tags = values.get("tags")
    tags = tags if isinstance(tags, list) else []
    if "words" in values:
        return path, title, tags, values["words"] or "", values.get("links") or ""
    body = values.get("body") or ""
    return path, title, tags, note_words(path=path, title=title, body=body), note_links(body)


def build_index(notes: Iterable) -> CandidateIndex:
    return CandidateIndex.build(notes)


def candidates_for(note, index: CandidateIndex, *, limit: int = MAX_CANDIDATES) -> list[str]:
    """Paths of up to `limit` notes related to `note` (a path or an object with .path)."""
    path = note if isinstance(note, str) else note.path
    return index.candidates(path, limit=limit)


def sample_index(vault_id: int, note_ids: list[int], *, words: bool = True) -> CandidateIndex:
    """An index over some notes of the vault (an estimate's sample): their stored words, or
    words read from the start of the body where none are stored yet; nothing is written."""
    notes = Note.objects.filter(vault_id=vault_id, state=Note.State.OK, id__in=note_ids)
    if not words:
        return CandidateIndex.build(notes.values_list("path", "title", "tags", Value(""), Value("")))
    rows = list(notes.values_list("id", "path", "title", "tags", "index_words__words",
                                  "index_words__links"))  # fmt: skip
    missing = [row[0] for row in rows if row[4] is None]
    bodies = dict(
        Note.objects.filter(id__in=missing).values_list("id", Substr("body", 1, SAMPLE_BODY_CHARS))
    )
    return CandidateIndex.build(
        (path, title, tags, w, links) if w is not None
        else (path, title, tags, bodies.get(nid) or "")
        for nid, path, title, tags, w, links in rows
    )  # fmt: skip


def vault_index(vault_id: int) -> CandidateIndex:
    """The vault's index, from the words stored per note; a note new or changed since its words
    were stored (another content hash), or stored by an older note_words (WORDS_FORMAT), is
    read again and its row replaced first."""
    stale = list(
        Note.objects.filter(vault_id=vault_id, state=Note.State.OK)
        .exclude(index_words__content_hash=models.F("content_hash"),
                 index_words__words_format=WORDS_FORMAT)  # fmt: skip
        .values_list("id", flat=True)
    )
    for start in range(0, len(stale), STALE_CHUNK):
        chunk = Note.objects.filter(id__in=stale[start : start + STALE_CHUNK]).values_list(
            "id", "path", "title", "body", "content_hash"
        )
        rows = [
            NoteWords(note_id=note_id, content_hash=digest, words_format=WORDS_FORMAT,
                      words=note_words(path=path, title=title, body=body), links=note_links(body))
            for note_id, path, title, body, digest in chunk
        ]  # fmt: skip
        with transaction.atomic():  # another worker may be storing the same notes: last wins
            NoteWords.objects.bulk_create(
                rows, update_conflicts=True, unique_fields=["note"],
                update_fields=["content_hash", "words_format", "words", "links"],
            )  # fmt: skip
    fingerprint = _fingerprint(vault_id)
    folder = os.path.join(settings.CURATION_INDEX_DIR, f"vault-{vault_id}")
    try:
        return CandidateIndex.load(os.path.join(folder, fingerprint))
    except (OSError, ValueError, KeyError):  # not built yet for these notes (or unreadable)
        pass
    rows = (
        Note.objects.filter(vault_id=vault_id, state=Note.State.OK)
        .values_list("path", "title", "tags", "index_words__words", "index_words__links")
        .order_by()
        .iterator(chunk_size=5000)
    )
    index = CandidateIndex.build(rows)
    _store(index, folder, fingerprint)
    return index


INDEX_FORMAT = 4  # raise when what an index holds or how it is built changes


def _fingerprint(vault_id: int) -> str:
    """What a vault's index is built from: every note's path and content hash (its title, tags
    and words come from its content), and the settings that shape the index."""
    digest = hashlib.sha256(repr((INDEX_FORMAT, WORDS_FORMAT, MAX_WORDS, COMMON_SHARE,
                                  COMMON_MIN, MENTIONS_MAX, TAG_WEIGHT)).encode())  # fmt: skip
    notes = (
        Note.objects.filter(vault_id=vault_id, state=Note.State.OK)
        .order_by("path")
        .values_list("path", "content_hash")
        .iterator(chunk_size=5000)
    )
    for path, content_hash in notes:
        digest.update(f"{path}\0{content_hash}\n".encode("utf-8", "surrogatepass"))
    return digest.hexdigest()[:32]


def _store(index: CandidateIndex, folder: str, fingerprint: str) -> None:
    """Keep the index for the next job on these notes (the vault's older ones are removed).
    Written aside and renamed into place, so a reader never sees half of it; a cache that
    cannot be written costs the next job a rebuild, never this one its result."""
    try:
        os.makedirs(folder, exist_ok=True)
        work = tempfile.mkdtemp(prefix=".new-", dir=folder)
        try:
            index.save(work)
            os.rename(work, os.path.join(folder, fingerprint))
        except OSError:
            shutil.rmtree(work, ignore_errors=True)
            if not os.path.isdir(os.path.join(folder, fingerprint)):  # another worker's is there
                raise
        for name in os.listdir(folder):
            other = os.path.join(folder, name)
            # Another worker's index being written is left alone, unless a crash left it.
            if name != fingerprint and (not name.startswith(".new-")
                                        or time.time() - os.path.getmtime(other) > 3600):
                shutil.rmtree(other, ignore_errors=True)
    except OSError as exc:
        log.warning("the related-notes index of vault %s was not kept for the next job: %s",
                    folder, exc)  # fmt: skip
