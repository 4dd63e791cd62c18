"""Fonts that draw Chinese: the browser font stack of report.html, and the installed CJK font
that matplotlib charts (confusion matrices, the notebooks' plots) use."""
import subprocess

# The browser picks the first CJK font it has (Debian: fonts-noto-cjk).
FONT_STACK = ('"Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "Source Han Sans CN", '
              '"PingFang SC", "Hiragino Sans GB", "Microsoft YaHei", "WenQuanYi Micro Hei", '
              '"WenQuanYi Zen Hei", "SimHei", "Noto Serif CJK SC", sans-serif')


def cjk_font():
    """Family name of an installed font that covers Chinese (``fc-list :lang=zh``), or None."""
    try:
        listing = subprocess.run(["fc-list", ":lang=zh", "family"], capture_output=True, text=True,
                                 timeout=10, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    families = sorted(line.split(",")[0].strip() for line in listing.splitlines() if line.strip())
    # a Simplified Chinese sans face reads best in a chart; any CJK face draws the glyphs
    preferred = [f for f in families if "Sans" in f and f.endswith("SC")] or families
    return preferred[0] if preferred else None
