"""Substitutions for the repository's address, read from ``_config.yml``.

``repository.url`` and ``repository.branch`` in ``_config.yml`` are the one
place the address is written. Jupyter Book hands them to the theme as
``repository_url`` and ``repository_branch``; this extension offers them to
the prose as MyST substitutions, so ``{{ pip_install }}`` renders the install
command for the configured repository.
"""


def _add_substitutions(app, config):
    options = config.html_theme_options
    url = options.get("repository_url", "").rstrip("/")
    branch = options.get("repository_branch", "main")
    if not url:
        raise ValueError("_config.yml needs repository.url")
    command = f'pip install "eventlib @ git+{url}@{branch}"'
    config.myst_substitutions = {
        **config.myst_substitutions,
        "repo_url": url,
        "repo_branch": branch,
        "pip_install": f"`{command}`",
        "git_clone": f"`git clone {url}.git`",
    }


def setup(app):
    app.connect("config-inited", _add_substitutions)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
