"""Fonts that draw Chinese: the browser font stack of report.html, and the installed CJK font
that matplotlib charts (confusion matrices, the notebooks' plots) use."""
import subprocess

# The browser picks the first CJK font it has (Debian: fonts-noto-cjk).
FONT_STACK = ('"Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "Source Han Sans CN", '
              '"PingFang SC", "Hiragino Sans GB", "Microsoft YaHei", "WenQuanYi Micro Hei", '
              '"WenQuanYi Zen Hei", "SimHei", "Noto Serif CJK SC", sans-serif')


def _cjk_face():
    """(family, file) of an installed font that covers Chinese (``fc-list :lang=zh``), or None."""
    try:
        listing = subprocess.run(["fc-list", ":lang=zh", "family", "file"], capture_output=True, text=True,
                                 timeout=10, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    faces = sorted(((family.split(",")[0].strip(), file.strip()) for file, _, family in
                    (line.partition(":") for line in listing.splitlines()) if family.strip()),
                   key=lambda face: (face[0], "Regular" not in face[1], face[1]))  # regular weight first
    # a Simplified Chinese sans face reads best in a chart; any CJK face draws the glyphs
    preferred = [face for face in faces if "Sans" in face[0] and face[0].endswith("SC")] or faces
    return preferred[0] if preferred else None


def cjk_font():
    """Family name of an installed font that covers Chinese, or None."""
    face = _cjk_face()
    return face[0] if face else None


def matplotlib_cjk_font():
    """That font's family as matplotlib names it, or None. The font file is registered with
    matplotlib first: its font list is cached, and misses fonts installed after it was made."""
    face = _cjk_face()
    if face is None:
        return None
    from matplotlib import font_manager
    font_manager.fontManager.addfont(face[1])
    return font_manager.FontProperties(fname=face[1]).get_name()
