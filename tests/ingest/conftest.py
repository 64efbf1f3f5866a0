"""Fixtures for the ingest tests: a sample article page (the web server is in tests/conftest.py)."""

import pytest

ARTICLE = """<!doctype html>
<html><head><title>{title}</title><meta charset="utf-8"></head>
<body>
<nav><a href="/">Home</a> | <a href="/about">About</a></nav>
<article>
<h1>{title}</h1>
<p>Retrieval augmented generation combines a search step with a language model, so the model
answers from documents it was given rather than from memory alone. This paragraph is long
enough for an extractor to treat it as the main text of the page and not as boilerplate.</p>
<p>A second paragraph explains <strong>chunking</strong>, embeddings and the
<a href="https://example.org/rerank">reranking step</a> that orders the retrieved passages
before they are handed to the model, which matters a great deal for answer quality.</p>
<ul><li>Chunk the documents</li><li>Embed the chunks</li><li>Retrieve and rerank</li></ul>
</article>
<footer>Copyright 2026 Example Corp. All rights reserved.</footer>
</body></html>
"""


@pytest.fixture
def article_html():
    def build(title: str = "Retrieval Augmented Generation, explained") -> str:
        return ARTICLE.format(title=title)

    return build
