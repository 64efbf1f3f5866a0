"""Local candidate related notes: from title words and tags, never the note itself."""

from curation.engine.candidates import CandidateIndex, build_index, candidates_for

ROWS = [
    ("ai/Agent Frameworks.md", "Agent Frameworks", ["ai/agents"]),
    ("ai/LangGraph Agents.md", "LangGraph Agents", ["ai/agents/frameworks"]),
    ("ai/Prompting.md", "Prompting", ["ai/llm"]),
    ("cooking/Sourdough.md", "Sourdough", ["cooking/baking"]),
    ("cooking/Bread Baking.md", "Bread Baking", ["cooking/baking"]),
    ("misc/Agent Smith.md", "Agent Smith", []),
]


def test_related_by_shared_title_words_and_tags():
    index = build_index(ROWS)
    found = candidates_for("ai/Agent Frameworks.md", index)
    assert found[0] == "ai/LangGraph Agents.md"  # shares "agent" and the ai/agents tag terms
    assert "misc/Agent Smith.md" in found  # shares a title word
    assert "cooking/Sourdough.md" not in found
    assert "ai/Agent Frameworks.md" not in found  # never the note itself
    assert candidates_for("cooking/Sourdough.md", index) == ["cooking/Bread Baking.md"]


def test_accepts_note_like_objects_and_dicts():
    class FakeNote:
        def __init__(self, path, title, tags):
            self.path, self.title, self.tags = path, title, tags

    notes = [FakeNote(*row) for row in ROWS]
    index = CandidateIndex.build(notes)
    assert candidates_for(notes[3], index) == ["cooking/Bread Baking.md"]
    index = CandidateIndex.build({"path": p, "title": t, "tags": g} for p, t, g in ROWS)
    assert len(index) == len(ROWS)


def test_unlinkable_and_ambiguous_names_are_never_candidates():
    rows = ROWS + [
        ("ai/Agents #1.md", "Agents #1", ["ai/agents"]),  # `#` breaks a wikilink
        ("a/Agent Tools.md", "Agent Tools", ["ai/agents"]),
        ("b/Agent Tools.md", "Agent Tools", ["ai/agents"]),  # same link name twice
    ]
    index = build_index(rows)
    found = candidates_for("ai/Agent Frameworks.md", index, limit=20)
    assert "ai/Agents #1.md" not in found
    assert "a/Agent Tools.md" not in found and "b/Agent Tools.md" not in found
    assert candidates_for("ai/Agents #1.md", index)  # such a note still gets candidates


def test_limit_and_deterministic_order():
    rows = [(f"f/Topic {i}.md", f"Topic {i} shared words", ["x/y"]) for i in range(50)]
    index = build_index(rows)
    first = candidates_for("f/Topic 7.md", index, limit=5)
    assert len(first) == 5 and "f/Topic 7.md" not in first
    assert candidates_for("f/Topic 7.md", build_index(reversed(rows)), limit=5) == first


def test_a_note_outside_the_index_can_ask_with_its_title_and_tags():
    index = build_index(ROWS)
    found = index.candidates("new/Baking Bread.md", title="Baking Bread", tags=["cooking"])
    assert found[:2] == ["cooking/Bread Baking.md", "cooking/Sourdough.md"]


def test_taxonomy_most_used_first():
    index = build_index(ROWS + [("x.md", "X", ["#AI/Agents", "cooking/baking"])])
    # cooking/baking: 3 notes; ai/agents: 2 ("#AI/Agents" folds into it); then by name
    assert index.taxonomy()[:3] == ["cooking/baking", "ai/agents", "ai/agents/frameworks"]
    assert index.taxonomy(limit=1) == ["cooking/baking"]


def test_empty_vault():
    index = build_index([])
    assert candidates_for("a.md", index) == [] and index.taxonomy() == []


def test_same_folder_neighbours_fill_a_short_list():
    rows = [
        ("travel/Lisbon.md", "Lisbon", []),
        ("travel/Packing.md", "Packing", []),
        ("travel/sub/Visa.md", "Visa", []),  # another folder, even if nested
        ("work/Standup.md", "Standup", []),
    ]
    index = build_index(rows)
    assert candidates_for("travel/Lisbon.md", index) == ["travel/Packing.md"]
    assert candidates_for("work/Standup.md", index) == []
    assert index.candidates("travel/Madrid.md", title="Madrid") == [
        "travel/Lisbon.md", "travel/Packing.md"]
