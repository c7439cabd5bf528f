"""One figure style for the book's chapters (and for anyone's own plots of eventlib results).

    import matplotlib.pyplot as plt
    from eventlib.plotting import use_book_style, new_figure

    use_book_style()                       # once, after importing matplotlib
    fig, ax = new_figure()                 # one panel, the book's width
    fig, axes = new_figure(1, 2, height=3) # two panels side by side

The book shows a figure at its natural size at a desktop width: ``WIDTH_IN`` inches at ``DPI`` dots
per inch is 700 pixels, narrower than the text column, so text set at ``FONT_PT`` points is read at
that size (``tests/book`` measures it in a browser). Narrow screens scale the image down; that is
what the figure caption and alt text are for.

The module needs matplotlib (not a dependency of the library: ``pip install matplotlib``); it is
imported only when a function here is called.
"""

from __future__ import annotations

__all__ = ["DPI", "FONT_PT", "WIDTH_IN", "book_style_rc", "new_figure", "use_book_style"]

#: Figure width in inches: 700 px at ``DPI``, inside the book's text column at a 1280 px window.
WIDTH_IN = 7.0
#: Dots per inch of inline figures.
DPI = 100
#: Smallest text in a figure, in points (tick labels and legends included).
FONT_PT = 10.0


def book_style_rc() -> dict:
    """The matplotlib settings of the book's style, as a dict for ``matplotlib.rc_context``."""
    return {
        "figure.figsize": (WIDTH_IN, 3.0),
        "figure.dpi": DPI,
        "savefig.dpi": DPI,
        "figure.constrained_layout.use": True,
        "font.size": FONT_PT + 1,
        "axes.titlesize": FONT_PT + 1,
        "axes.labelsize": FONT_PT + 1,
        "xtick.labelsize": FONT_PT,
        "ytick.labelsize": FONT_PT,
        "legend.fontsize": FONT_PT,
        "legend.title_fontsize": FONT_PT,
        "legend.frameon": False,
        "figure.titlesize": FONT_PT + 2,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.grid": False,
        "lines.linewidth": 1.6,
        "image.cmap": "viridis",
    }


def use_book_style() -> None:
    """Make the book's style matplotlib's default for the rest of the process (or notebook)."""
    import matplotlib as mpl

    mpl.rcParams.update(book_style_rc())


def new_figure(nrows: int = 1, ncols: int = 1, *, height: float = 3.0, **subplots_kw):
    """A figure of the book's width and ``height`` inches with ``nrows`` x ``ncols`` panels.

    Keyword arguments go to ``matplotlib.pyplot.subplots`` (for example ``sharex=True`` so stacked
    panels share one time axis). Returns ``(figure, axes)`` as ``subplots`` does.
    """
    import matplotlib.pyplot as plt

    if nrows < 1 or ncols < 1:
        raise ValueError(f"nrows and ncols must be >= 1, got nrows={nrows}, ncols={ncols}")
    if not height > 0:
        raise ValueError(f"height must be a positive number of inches, got {height!r}")
    with plt.rc_context(book_style_rc()):
        return plt.subplots(nrows, ncols, figsize=(WIDTH_IN, height), **subplots_kw)
