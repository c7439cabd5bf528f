"""Include each inline ``<script>`` once.

Sphinx 7.4 lists an inline script registered after the HTML builder starts
(``app.add_js_file(None, body=...)``, as sphinx-thebe and
sphinx-togglebutton do) twice: once with filename ``None``, once with ``''``.
The second ``const THEBE_JS_URL`` is then a SyntaxError on every page.
Sphinx 8.2 fixes it (sphinx-doc/sphinx#13402), but Jupyter Book 1.x requires
Sphinx < 8, so this extension drops the repeats from each page's scripts.
"""


def _key(js):
    return (js.filename or "", js.priority, tuple(sorted(js.attributes.items())))


def _drop_repeated_scripts(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, kept = set(), []
    for js in scripts:
        if _key(js) not in seen:
            seen.add(_key(js))
            kept.append(js)
    context["script_files"] = kept


def setup(app):
    app.connect("html-page-context", _drop_repeated_scripts)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
