"""The one source of the expressions' colours, for the PNG plot, the HTML report and the web page.

Okabe & Ito's colour-blind-friendly palette (with its grey for neutral): seven colours that stay
apart under the common colour-vision deficiencies.
"""

from __future__ import annotations

import json

from video_emotions.domain import EMOTIONS

#: Each expression's colour, in :data:`~video_emotions.domain.EMOTIONS` order.
EMOTION_COLORS: dict[str, str] = {
    "angry": "#D55E00",  # vermillion
    "disgust": "#009E73",  # bluish green
    "fear": "#CC79A7",  # reddish purple
    "happy": "#E69F00",  # orange
    "sad": "#0072B2",  # blue
    "surprise": "#56B4E9",  # sky blue
    "neutral": "#999999",  # grey
}

#: The markers of sampled frames without a face (black: apart from neutral's grey).
NO_FACE_COLOR = "#000000"

assert tuple(EMOTION_COLORS) == EMOTIONS


def colors_json() -> str:
    """``EMOTION_COLORS`` as a JSON object, safe to embed in an HTML ``<script>``."""
    return json.dumps(EMOTION_COLORS)


def colors_script() -> str:
    """JavaScript for a ``<script>`` element: ``window.VE_COLORS = {...}`` (the seven colours, which
    timeline.js takes when ``options.colors`` is not given) and ``window.VE_NO_FACE_COLOR``."""
    return f"window.VE_COLORS = {colors_json()};\nwindow.VE_NO_FACE_COLOR = {json.dumps(NO_FACE_COLOR)};\n"
