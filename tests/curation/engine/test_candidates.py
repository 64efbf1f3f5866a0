"""Related-note candidates: ranked by what notes say, never the note itself or what it links."""

import os
import time
import unicodedata
from pathlib import Path

import bm25s
import numpy as np
import pytest

from curation.engine.candidates import (
    _BM25,
    WORDS_FORMAT,
    CandidateIndex,
    _Docs,
    build_index,
    candidates_for,
    note_words,
    vault_index,
    words,
)
from curation.models import NoteWords
from ingest.models import Note, Vault

SOURDOUGH = "Feed the starter with flour and water; the levain rises, then bake the loaf."
RAMEN = "Tonkotsu broth simmers for hours; noodles, chashu pork and a soft egg."
AGENTS = "An agent calls tools in a loop: the planner picks a tool, the executor runs it."

ROWS = [
    ("cooking/Weekend bread.md", "Weekend bread", [], SOURDOUGH + " Bake at 250 degrees."),
    ("cooking/Starter care.md", "Starter care", [], "Feed the starter daily. " + SOURDOUGH),
    ("cooking/Ramen.md", "Ramen", ["food/japanese"], RAMEN),
    ("ai/Tool loops.md", "Tool loops", ["ai/agents"], AGENTS),
    ("ai/Planner executor.md", "Planner executor", ["ai/agents"], AGENTS + " Retries too."),
    ("misc/Shopping.md", "Shopping", [], "Batteries, light bulbs, stamps."),
]
# Words in a quarter of the notes or more are dropped as boilerplate: a vault has other notes.
FILLER = [(f"misc/Other {i}.md", f"Other {i}", [], f"Unrelated{i} text{i}.") for i in range(20)]
FILLER += [(f"misc/More {i}.md", f"More {i}", [], f"Filler{i} prose{i}.") for i in range(10)]


def test_notes_meet_by_what_they_say_not_by_their_titles():
    index = build_index(ROWS)
    assert candidates_for("cooking/Weekend bread.md", index)[0] == "cooking/Starter care.md"
    assert candidates_for("ai/Tool loops.md", index) == ["ai/Planner executor.md"]
    assert "cooking/Weekend bread.md" not in candidates_for("cooking/Weekend bread.md", index)


def test_a_note_with_nothing_related_gets_no_candidates():
    index = build_index(ROWS)
    assert candidates_for("misc/Shopping.md", index) == []
    assert candidates_for("not/in the vault.md", index) == []


def test_accepts_note_like_objects_and_dicts():
    class FakeNote:
        def __init__(self, path, title, tags, body):
            self.path, self.title, self.tags, self.body = path, title, tags, body

    notes = [FakeNote(*row) for row in ROWS]
    index = CandidateIndex.build(notes)
    assert candidates_for(notes[3], index) == ["ai/Planner executor.md"]
    index = CandidateIndex.build(
        {"path": p, "title": t, "tags": g, "body": b} for p, t, g, b in ROWS
    )
    assert len(index) == len(ROWS)


def test_what_the_author_already_linked_is_never_suggested():
    rows = [ROWS[0], (*ROWS[1][:3], ROWS[1][3] + " See [[Weekend bread|the bread]].")]
    index = build_index(rows)
    assert candidates_for("cooking/Starter care.md", index) == []
    assert index.linked("cooking/Starter care.md") == ["cooking/Weekend bread.md"]
    # The other end may get it back: a backlink is a reason, not a link it has.
    assert candidates_for("cooking/Weekend bread.md", index) == ["cooking/Starter care.md"]


def test_what_a_note_much_like_this_one_links_to_is_a_candidate():
    """Starter care says nothing of Oven (no word, no name in common), but Weekend bread, which
    says what Starter care says, links to it: notes on one subject link to the same pages."""
    oven = ("kitchen/Oven.md", "Oven", [], "Preheat to 250, steam tray, thermometer.")
    bread = (*ROWS[0][:3], ROWS[0][3] + " Then see [[Oven]].")
    index = build_index([bread, ROWS[1], oven] + FILLER)
    assert candidates_for("cooking/Starter care.md", index) == [
        "cooking/Weekend bread.md", "kitchen/Oven.md"]
    # The oven gets the note that links to it (a link back), and nothing lent: no note is like it.
    assert candidates_for("kitchen/Oven.md", index) == ["cooking/Weekend bread.md"]


def test_unlinkable_names_neither_get_nor_are_candidates():
    rows = ROWS + [
        ("ai/Agents #1.md", "Agents #1", [], AGENTS),  # `#` breaks a link
        ("ai/ Agents.md", " Agents", [], AGENTS),  # a link's text is read trimmed
        ("ai/Loops.md", "Loops", [], AGENTS),  # one name but for case: Obsidian can't tell
        ("ai/loops.md", "loops", [], AGENTS),
    ] + FILLER
    index = build_index(rows)
    found = candidates_for("ai/Tool loops.md", index, limit=20)
    assert found == ["ai/Planner executor.md"]
    # A link is written on both notes: one whose name cannot hold its end gets none at all.
    for path in ("ai/Agents #1.md", "ai/ Agents.md", "ai/Loops.md", "ai/loops.md"):
        assert candidates_for(path, index) == []


def test_notes_that_share_a_name_are_candidates_each_by_its_path():
    """Obsidian links `[[a/Loops]]` where two notes are named Loops: both can be linked."""
    rows = ROWS + [
        ("a/Loops.md", "Loops", [], AGENTS),
        ("b/LOOPS.md", "LOOPS", [], AGENTS + " See [[a/Loops]]."),  # the same name, any case
    ] + FILLER
    index = build_index(rows)
    found = candidates_for("ai/Tool loops.md", index, limit=20)
    assert set(found) == {"ai/Planner executor.md", "a/Loops.md", "b/LOOPS.md"}
    # A body link by path resolves to its note: the author linked it, it is not offered again.
    assert "a/Loops.md" not in candidates_for("b/LOOPS.md", index, limit=20)
    assert "b/LOOPS.md" in candidates_for("a/Loops.md", index, limit=20)


def test_a_shared_tag_relates_notes_whose_words_differ():
    rows = [
        ("x/Alpha.md", "Alpha", ["homelab/backup"], "Rsync snapshots every night."),
        ("y/Beta.md", "Beta", ["#homelab/backup"], "Tapes rotate weekly, one kept offsite."),
        ("z/Gamma.md", "Gamma", ["homelab/network"], "Tapes of old music."),
        ("z/Delta.md", "Delta", [], "Rsync and tapes, unrelated."),
    ] + FILLER
    index = build_index(rows)
    # Alpha shares no word with Beta, only the tag; with Gamma only the broader `homelab`.
    found = candidates_for("x/Alpha.md", index)
    assert found[0] == "y/Beta.md"
    assert found.index("z/Gamma.md") > 0
    without_tags = build_index([(p, t, [], b) for p, t, _, b in rows])
    assert "y/Beta.md" not in candidates_for("x/Alpha.md", without_tags)


def test_frontmatter_code_links_and_addresses_are_not_words():
    text = note_words(
        path="x/Note.md",
        title="Note",
        body="Prose here.\n```python\nimport starter\n```\n`flour` [[Levain]] "
        "![[img.png]] https://example.com/bake [label](https://x.y/water)\n",
    )
    assert set(text.split()) == {"prose", "here", "label", "note"}


def test_cjk_text_is_cut_so_it_can_match():
    assert words("東京ラーメン") == ["東京", "京ラ", "ラー", "ーメ", "メン"]
    assert words("서울 여행 계획") == ["서울", "여행", "계획"]
    rows = [
        ("t/東京 ラーメン.md", "東京 ラーメン", [],
         "東京で一番おいしいラーメン屋を探した。豚骨スープが濃い。"),
        ("t/博多.md", "博多", [], "博多の豚骨ラーメンはスープが濃い。替え玉を頼む。"),
        ("t/서울.md", "서울", [], "서울 여행 계획: 경복궁, 한강 공원, 그리고 시장 음식."),
        ("t/부산.md", "부산", [], "부산 여행 계획: 해운대, 시장 음식, 그리고 밀면."),
    ]
    index = build_index(rows)
    assert candidates_for("t/博多.md", index) == ["t/東京 ラーメン.md"]
    assert candidates_for("t/부산.md", index) == ["t/서울.md"]


def test_decomposed_and_composed_names_resolve_the_same_links():
    nfd = unicodedata.normalize("NFD", "한국어 노트")
    rows = [
        (f"k/{nfd}.md", nfd, [], "한국어 문법 정리와 예문."),
        ("k/Other.md", "Other", [], f"See [[{unicodedata.normalize('NFC', nfd)}]]."),
    ]
    index = build_index(rows)
    assert index.linked("k/Other.md") == [f"k/{nfd}.md"]


def test_template_boilerplate_does_not_make_notes_related():
    template = "## Log\nCreated with the daily template. Mood energy sleep water gratitude.\n"
    rows = [(f"d/Day {i}.md", f"Day {i}", [], template + f"Unique{i} words only{i}.")
            for i in range(12)]  # fmt: skip
    index = build_index(rows)
    assert all(candidates_for(p, index) == [] for p, *_ in rows)


def test_stored_words_with_odd_counts_are_read_as_once():
    """Words come from the database: a row written by hand or by an older version may say
    `word:0` or `word:x`; each still counts once, and the index stays whole."""
    odd = [(p, t, g, note_words(path=p, title=t, body=b), "") for p, t, g, b in ROWS + FILLER]
    plain = list(odd)
    odd[0] = (*odd[0][:3], "starter:0 flour:x water:999 " + odd[0][3], "")
    plain[0] = (*plain[0][:3], "starter flour water:255 " + plain[0][3], "")
    index, expected = CandidateIndex.build(odd), CandidateIndex.build(plain)
    for name in ("indptr", "indices", "data"):
        np.testing.assert_array_equal(index.bm25.scores[name], expected.bm25.scores[name])
    assert candidates_for("cooking/Weekend bread.md", index)[0] == "cooking/Starter care.md"


def test_a_note_is_mentioned_where_another_holds_every_word_of_its_name():
    """Obsidian's unlinked mentions: `Strength program` is named in full by the note on
    training; `5x5 strength program` is not, since no other note says `5x5`."""
    rows = [
        ("fitness/Strength program.md", "Strength program", [], "Squats and presses."),
        ("fitness/5x5 strength program.md", "5x5 strength program", [], "Five sets of five."),
        ("fitness/Training.md", "Training", [], "My strength program starts in May."),
        ("fitness/Running.md", "Running", [], "A strength program helps runners too."),
    ]
    index = build_index(rows + FILLER)
    mentioned = index._row_of(index.mentions, index.position["fitness/Training.md"])
    assert [index.paths[i] for i in mentioned] == ["fitness/Strength program.md"]
    by = index._row_of(index.mentioned_by, index.position["fitness/Strength program.md"])
    assert sorted(index.paths[i] for i in by) == [
        "fitness/5x5 strength program.md", "fitness/Running.md", "fitness/Training.md"]
    assert not len(index._row_of(index.mentioned_by, 1))  # 5x5 strength program


def test_a_folder_note_and_the_notes_of_its_folder_are_near():
    """`Sync.md` is the overview of `Sync/`: of two notes as alike, it comes first for a note
    in that folder (or below it), and that note comes first for it."""
    rows = [
        ("Backup.md", "Backup", [], "Servers keep encrypted copies. Disks rotate weekly."),
        ("Sync.md", "Sync", [], "Servers keep encrypted copies. Devices pull changes."),
        ("Sync/Regions.md", "Regions", [], "Pick servers near you; encrypted copies stay."),
        ("Sync/Setup/Headless.md", "Headless", [], "Servers without screens pull copies."),
    ]
    index = build_index(rows + FILLER)
    assert candidates_for("Sync/Regions.md", index)[0] == "Sync.md"
    assert candidates_for("Sync/Setup/Headless.md", index)[0] == "Sync.md"
    assert set(candidates_for("Sync.md", index)[:2]) == {"Sync/Regions.md",
                                                         "Sync/Setup/Headless.md"}


def test_a_headings_words_count_twice():
    kept = note_words(path="Bread.md", title="Bread", body="## Levain\nFeed it.\n```\n# no\n```")
    assert kept.split() == ["levain:2", "feed", "bread"]


def test_limit_and_deterministic_order():
    rows = [(f"f/Topic {i}.md", f"Topic {i}", ["x/y"], "shared words about sourdough " * 3)
            for i in range(10)] + FILLER  # fmt: skip
    first = candidates_for("f/Topic 7.md", build_index(rows), limit=5)
    assert len(first) == 5 and "f/Topic 7.md" not in first
    assert candidates_for("f/Topic 7.md", build_index(reversed(rows)), limit=5) == first


def test_taxonomy_most_used_first():
    index = build_index(ROWS + [("x.md", "X", ["#AI/Agents", "food/japanese"], "x")])
    assert index.taxonomy()[:2] == ["ai/agents", "food/japanese"]
    assert index.taxonomy(limit=1) == ["ai/agents"]


def test_empty_vault():
    index = build_index([])
    assert candidates_for("a.md", index) == [] and index.taxonomy() == []


@pytest.mark.django_db
def test_vault_index_stores_words_and_reads_again_only_changed_notes(django_assert_num_queries):
    vault = Vault.objects.create(name="v", root="/tmp/v")
    for path, title, tags, body in ROWS:
        Note.objects.create(vault=vault, path=path, title=title, tags=tags, body=body,
                            content_hash=f"h-{path}")  # fmt: skip
    index = vault_index(vault.id)
    assert NoteWords.objects.filter(note__vault=vault).count() == len(ROWS)
    assert candidates_for("ai/Tool loops.md", index) == ["ai/Planner executor.md"]

    # Nothing changed: one query for what is stale (nothing), one for the notes' content
    # hashes; the index kept by the first call is used, not built again from the words.
    with django_assert_num_queries(2):
        kept = vault_index(vault.id)
    assert isinstance(kept.bm25.scores["data"], np.memmap)
    assert candidates_for("ai/Tool loops.md", kept) == ["ai/Planner executor.md"]

    note = Note.objects.get(path="misc/Shopping.md")
    note.body, note.content_hash = AGENTS + " A shopping agent.", "h-new"
    note.save()
    before = dict(NoteWords.objects.values_list("note_id", "words"))
    index = vault_index(vault.id)
    after = dict(NoteWords.objects.values_list("note_id", "words"))
    assert [k for k in after if after[k] != before[k]] == [note.id]
    assert NoteWords.objects.get(note=note).content_hash == "h-new"
    assert "misc/Shopping.md" in candidates_for("ai/Tool loops.md", index)

    # Words stored by an older note_words (an upgrade) are read again, though no note changed.
    old = Note.objects.get(path="cooking/Ramen.md")
    NoteWords.objects.filter(note=old).update(words_format=WORDS_FORMAT - 1, words="stale:9")
    vault_index(vault.id)
    stored = NoteWords.objects.get(note=old)
    assert stored.words_format == WORDS_FORMAT and "tonkotsu" in stored.words
    assert dict(NoteWords.objects.exclude(note=old).values_list("note_id", "words")) == {
        k: v for k, v in after.items() if k != old.id}


@pytest.mark.django_db
def test_a_job_without_related_reads_no_notes_words():
    from curation.engine.requests import RequestBuilder
    from curation.models import Job

    vault = Vault.objects.create(name="v", root="/tmp/v")
    for path, title, tags, body in ROWS:
        Note.objects.create(vault=vault, path=path, title=title, tags=tags, body=body)
    tags_only = RequestBuilder(Job.objects.create(vault=vault, fields=["tags"], model="m"))
    assert tags_only.taxonomy(vault.id) == ["ai/agents", "food/japanese"]
    assert not NoteWords.objects.exists()
    related = RequestBuilder(Job.objects.create(vault=vault, fields=["related"], model="m"))
    note = Note.objects.get(path="ai/Tool loops.md")
    assert related.candidates(note) == ["ai/Planner executor.md"]
    assert NoteWords.objects.count() == len(ROWS)


@pytest.mark.parametrize("part", [1, 7, 1000])
def test_the_bm25_matrix_built_in_parts_is_the_one_bm25s_builds(part):
    """The index builds bm25s's matrix part by part (memory); scores and layout are bm25s's."""
    rng = np.random.default_rng(3)
    words, notes = 40, 60
    ids, counts, ptr = [], [], [0]
    for _ in range(notes):
        picked = rng.choice(words, size=int(rng.integers(0, 12)), replace=False)
        picked[rng.random(len(picked)) < 0.2] = -1  # dropped words (boilerplate, unique)
        ids += picked.tolist()
        counts += rng.integers(1, 6, size=len(picked)).tolist()
        ptr.append(len(ids))
    docs = _Docs(np.array(ids, np.int32), np.array(counts, np.uint8), np.array(ptr, np.int64))
    whole = bm25s.BM25(csc_backend="numpy").build_index_from_ids(
        unique_token_ids=list(range(words)), corpus_token_ids=docs, show_progress=False)
    built = _BM25(csc_backend="numpy").build_in_parts(docs, words=words, part=part)
    np.testing.assert_array_equal(built["indptr"], whole["indptr"])
    np.testing.assert_array_equal(built["indices"], whole["indices"])
    np.testing.assert_allclose(built["data"], whole["data"], rtol=1e-6)
    assert built["data"].dtype == whole["data"].dtype and built["num_docs"] == notes


@pytest.mark.django_db
def test_the_kept_index_answers_as_the_built_one_and_follows_changes(index_dir):
    vault = Vault.objects.create(name="v", root="/tmp/v")
    rows = ROWS + [("a/Loops.md", "Loops", ["ai/agents"], AGENTS + " See [[Tool loops]].")]
    for path, title, tags, body in rows + FILLER:
        Note.objects.create(vault=vault, path=path, title=title, tags=tags, body=body,
                            content_hash=f"h-{path}")  # fmt: skip
    built = vault_index(vault.id)
    kept = vault_index(vault.id)
    assert isinstance(kept.words, np.memmap) and not isinstance(built.words, np.memmap)
    for path, *_ in rows + FILLER:
        assert kept.candidates(path) == built.candidates(path), path
        assert kept.linked(path) == built.linked(path)
    assert kept.taxonomy() == built.taxonomy() == ["ai/agents", "food/japanese"]
    folder = Path(index_dir) / f"vault-{vault.id}"
    first = [p.name for p in folder.iterdir()]
    assert len(first) == 1

    crashed, writing = folder / ".new-crashed", folder / ".new-writing"
    crashed.mkdir()
    writing.mkdir()
    os.utime(crashed, (time.time() - 7200, time.time() - 7200))  # left by a killed worker
    Note.objects.filter(path="misc/Shopping.md").update(body=AGENTS, content_hash="h-2")
    changed = vault_index(vault.id)
    assert "misc/Shopping.md" in changed.candidates("ai/Tool loops.md")
    left = sorted(p.name for p in folder.iterdir())
    assert first[0] not in left  # the older index removed, and what a crash left
    assert len(left) == 2 and ".new-writing" in left  # another worker's, still being written


@pytest.mark.django_db
def test_an_index_that_cannot_be_kept_still_answers(settings, tmp_path, caplog):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    settings.CURATION_INDEX_DIR = str(blocked)
    vault = Vault.objects.create(name="v", root="/tmp/v")
    for path, title, tags, body in ROWS:
        Note.objects.create(vault=vault, path=path, title=title, tags=tags, body=body,
                            content_hash=f"h-{path}")  # fmt: skip
    for _ in range(2):
        assert candidates_for("ai/Tool loops.md", vault_index(vault.id)) == [
            "ai/Planner executor.md"
        ]
    assert "was not kept for the next job" in caplog.text


@pytest.mark.django_db
def test_an_empty_vault_index_is_kept_and_loads():
    vault = Vault.objects.create(name="v", root="/tmp/v")
    assert len(vault_index(vault.id)) == 0
    assert len(vault_index(vault.id)) == 0
