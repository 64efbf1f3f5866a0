"""The emulator's answers read like a model's: telling tags fitted to the taxonomy, the opening
sentence as description, related notes from the top of the candidate list."""

from curation.emulator.answers import Prompt, answer_for

SCHEMA = {"properties": {"tags": {}, "description": {}, "related": {}}}
DAILY = """# Friday

Give the day a shape: three things. Took a long walk in the morning, then baked sourdough
bread with the rye starter. The starter doubled in six hours; the sourdough loaf was sour.
"""


def prompt(body, *, path="Cooking/Sourdough day.md", title="Sourdough day", taxonomy=(),
           candidates=(), paths=None):  # fmt: skip
    return Prompt(note_key=path, title=title, body=body, candidates=list(candidates),
                  taxonomy=list(taxonomy), system="", user="",
                  candidate_paths=dict(paths or {}))  # fmt: skip


def test_tags_are_the_notes_telling_words_not_words_every_note_uses():
    tags = answer_for(prompt(DAILY), SCHEMA)["tags"]
    assert "sourdough" in tags and "starter" in tags
    assert not {"give", "day", "three", "friday", "morning", "took"} & set(tags)
    assert all(t == t.lower() and " " not in t and not t.endswith("/three") for t in tags)


def test_tags_reuse_the_vaults_taxonomy_where_it_fits():
    taxonomy = ["cooking/baking", "cooking/sourdough", "ai/agents", "travel"]
    tags = answer_for(prompt(DAILY, taxonomy=taxonomy), SCHEMA)["tags"]
    assert tags[0] == "cooking/sourdough"  # the most specific existing tag that fits
    assert "ai/agents" not in tags and "travel" not in tags
    # Only a tag's root fits (the note is in Cooking/ but not about baking): the root it is.
    knife = prompt("The claw grip protects fingertips when you dice onions.",
                   path="Cooking/Knife skills.md", title="Knife skills", taxonomy=taxonomy)
    assert answer_for(knife, SCHEMA)["tags"][0] == "cooking"


def test_description_is_the_opening_sentence_and_related_the_fitting_top_candidates():
    answer = answer_for(prompt(DAILY, candidates=["Rye starter", "Sourdough loaf", "Budget",
                                                  "Starter feeding"]), SCHEMA)  # fmt: skip
    assert answer["description"] == "Give the day a shape: three things."
    assert answer["related"] == ["Rye starter", "Sourdough loaf", "Starter feeding"]
    assert answer_for(prompt(DAILY, candidates=["Budget", "Taxes"]), SCHEMA)["related"] == [
        "Budget"]  # the app ranked it first: nothing fits better


def test_related_also_takes_the_candidates_in_the_notes_folder():
    """As a model reads the listed paths: where no candidate's name fits, a note in Travel/
    relates to another trip there before a note of another folder the app ranked first."""
    kyoto = prompt("Maple season in the temples; a day bus pass; simmered tofu.",
                   path="Travel/Kyoto in autumn.md", title="Kyoto in autumn",
                   candidates=["Sourdough starter", "Lisbon three days"],
                   paths={"Sourdough starter": "Cooking/Sourdough starter.md",
                          "Lisbon three days": "Travel/Lisbon three days.md"})  # fmt: skip
    assert answer_for(kyoto, SCHEMA)["related"] == ["Lisbon three days"]


def test_decomposed_accents_do_not_cut_the_words_of_tags():
    """A note from macOS: its name and text decomposed (NFD); the tags are whole words."""
    import unicodedata

    body = unicodedata.normalize("NFD", "Crème brûlée: the crème sets, the brûlée crust cracks.")
    tags = answer_for(prompt(body, path=unicodedata.normalize("NFD", "Desserts/Crème brûlée.md"),
                             title=unicodedata.normalize("NFD", "Crème brûlée")), SCHEMA)["tags"]
    assert "crème" in tags or "brûlée" in tags
    assert not {"cre", "bru", "me", "le"} & set(tags)


def test_related_trusts_the_apps_first_candidates_over_a_name_far_down():
    """A name sharing one word at the list's end (`Strength program` for a note on
    programs) is not picked over the app's first candidates."""
    note = prompt("Tool calls: the program asks, the model answers, the loop repeats.",
                  path="AI/Tool use.md", title="Tool use",
                  candidates=["Batches", "Pytest", "Embeddings", "Meetings", "Strength program"],
                  paths={"Batches": "AI/Batches.md", "Strength program": "Fitness/S.md"})
    assert answer_for(note, SCHEMA)["related"] == ["Batches"]


def test_chinese_japanese_and_korean_tags_are_terms_not_clauses():
    """No spaces in Chinese or Japanese, particles tied to Korean words: the tags are the
    terms a reader would pick (`京都`, `된장찌개`), never a whole sentence or a particle."""
    kyoto = prompt("京都では早朝に伏見稲荷大社へ行くと観光客が少ない。京都の紅葉は十一月が見頃。"
                   "伏見稲荷大社の千本鳥居。", path="旅行/京都.md", title="京都の秋")
    tags = answer_for(kyoto, SCHEMA)["tags"]
    assert "京都" in tags and all(len(t) <= 6 for t in tags), tags
    protein = prompt("蛋白质摄入每公斤体重一点六克左右有助于肌肉恢复和增长。肌肉恢复需要睡眠。",
                     path="健身/蛋白质.md", title="蛋白质")
    tags = answer_for(protein, SCHEMA)["tags"]
    assert "蛋白质" in tags and all(len(t) <= 6 for t in tags), tags
    stew = prompt("된장찌개에는 두부와 애호박을 넣는다. 된장찌개를 끓일 때 멸치 육수를 쓴다.",
                  path="요리/된장찌개.md", title="된장찌개")
    tags = answer_for(stew, SCHEMA)["tags"]
    assert tags[0] == "된장찌개" and not any(t.endswith(("에는", "를", "와")) for t in tags), tags


def test_description_skips_checklists_and_template_code_and_ends_at_a_cjk_full_stop():
    daily = prompt("<% tp.date.now() %>\n- [x] Review inbox\n- [ ] Plan the day\n"
                   "Worked on the garden beds and planted garlic. Then rain.", title="2024-05-01")
    assert answer_for(daily, SCHEMA)["description"] == (
        "Worked on the garden beds and planted garlic.")
    kyoto = prompt("京都では早朝に観光客が少ない。紅葉は十一月。", title="京都")
    assert answer_for(kyoto, SCHEMA)["description"].endswith("京都では早朝に観光客が少ない。")


def test_the_vaults_shelves_are_not_tags():
    """Archive/, Inbox/, an index note: where a note is kept says nothing of its subject."""
    old = prompt("Rsync with --link-dest keeps daily snapshots of the home server; null "
                 "devices are skipped.", path="Archive/Inbox/Backups index.md",
                 title="Backups index")  # fmt: skip
    tags = answer_for(old, SCHEMA)["tags"]
    assert "backups" in tags and not {"archive", "inbox", "index", "null"} & set(tags), tags
