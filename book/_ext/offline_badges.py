"""Serve the notebooks' "Open in Colab" badge image from the book itself.

Each notebook starts with a badge whose image lives on Colab's servers. The
book must work with no network (tests/book fails any request that leaves the
site), so the badge image is swapped for a local copy,
``book/_static/colab-badge.svg``; the link still opens the notebook in Colab.
"""

from docutils import nodes

BADGES = {
    "https://colab.research.google.com/assets/colab-badge.svg": "book/_static/colab-badge.svg",
}


def _use_local_badges(app, doctree):
    for image in doctree.findall(nodes.image):
        local = BADGES.get(image.get("uri"))
        if local:
            image["uri"] = "/" + local  # absolute: relative to the book's root
            image["candidates"] = {"*": local}


def setup(app):
    # Before Sphinx's image collector (priority 500) records the images to copy.
    app.connect("doctree-read", _use_local_badges, priority=400)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
