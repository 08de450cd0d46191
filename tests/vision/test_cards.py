"""Model cards: the API's and docs/model-cards.md say the same, and say what a card must."""

from __future__ import annotations

from tests.conftest import REPO
from video_emotions.vision.cards import ENGINES, cards_markdown, engine_card


def test_docs_model_cards_is_what_the_cards_say() -> None:
    written = (REPO / "docs" / "model-cards.md").read_text()
    assert written == cards_markdown("mini-xception"), (
        "docs/model-cards.md is out of date: run `video-emotions models cards --out docs/model-cards.md`"
    )


def test_every_card_has_data_licence_uses_and_the_known_limits() -> None:
    for engine in ENGINES:
        card = engine_card(engine, classifier="mini-xception").document()
        assert card["wording"] == "facial-expression estimates, not feelings"
        assert card["trained_on"] and card["licence"] and card["intended_uses"]
        assert any("ranking candidates" in use for use in card["out_of_scope"])
        limits = " ".join(card["limits"])
        for limit in ("profile", "hidden", "lit", "small", "Cultural display rules", "Subgroups"):
            assert limit in limits, (engine, limit)
        assert card["figures"] or card["not_measured"]


def test_the_default_card_gives_accuracy_per_class_on_each_yardstick() -> None:
    card = engine_card("default", classifier="mini-xception")
    by_yardstick = {figure.yardstick for figure in card.figures if figure.by_class}
    assert by_yardstick == {"FER2013 PublicTest", "FER+ PublicTest", "dev clips"}
    assert "FER2013" in card.trained_on and "MIT" in card.licence
