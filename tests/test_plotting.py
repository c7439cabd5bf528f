"""eventlib.plotting: the book's figure style."""

import pytest

mpl = pytest.importorskip("matplotlib")
mpl.use("Agg")

from eventlib import plotting  # noqa: E402


def test_style_sets_readable_text_and_width():
    import matplotlib.pyplot as plt

    with mpl.rc_context():
        plotting.use_book_style()
        assert mpl.rcParams["xtick.labelsize"] >= plotting.FONT_PT
        assert mpl.rcParams["legend.fontsize"] >= plotting.FONT_PT
        fig, axes = plotting.new_figure(2, 1, height=4.0, sharex=True)
        try:
            assert tuple(fig.get_size_inches()) == (plotting.WIDTH_IN, 4.0)
            assert fig.dpi == plotting.DPI
            assert axes.shape == (2,)
        finally:
            plt.close(fig)


@pytest.mark.parametrize("kwargs", [dict(nrows=0), dict(height=0.0), dict(height=-1)])
def test_new_figure_rejects_bad_sizes(kwargs):
    with pytest.raises(ValueError, match="nrows|height"):
        plotting.new_figure(**kwargs)
