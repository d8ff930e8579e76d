"""Training recipes: whole entries per model (never merged with another's), their checks and step arithmetic."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from etcbench.errors import EtcbenchError
from etcbench.recipes import Recipe, recipe_for, recipe_name_for


def test_lookup_order_and_whole_entries():
    train = {"default": {"lr": 0.5, "epochs": 9}, "vit": {"epochs": 2}, "vit/etc": {"steps": 7}}
    assert recipe_name_for(train, "vit", "etc") == "vit/etc"
    assert recipe_name_for(train, "vit", "plain") == "vit"
    assert recipe_name_for(train, "resnet18", "etc") == "default"
    assert recipe_name_for({}, "vit", "etc") == "default"
    vit = recipe_for(train, "vit", "plain")
    assert vit.epochs == 2 and vit.lr == Recipe().lr  # not the default entry's 0.5: entries are whole
    assert recipe_for(train, "vit", "etc").steps == 7 and recipe_for(train, "vit", "etc").epochs is None
    assert recipe_for(train, "convmixer", "pe").lr == 0.5


@pytest.mark.parametrize("values, message", [
    ({"epochz": 3}, "unknown training setting.*epochz"),
    ({"epochs": 3, "steps": 10}, "epochs or steps, not both"),
    ({"batch_size": 10, "accumulation": 3}, "multiple of accumulation"),
    ({"optimizer": "lamb"}, "unknown recipe optimizer"),
    ({"schedule": "poly"}, "unknown recipe schedule"),
    ({"augment": "mixup"}, "unknown recipe augment"),
    ({"milestones": [5, 3], "schedule": "multistep"}, "increasing"),
    ({"milestones": [5]}, "multistep schedule only"),
    ({"crop_scale": [0.5, 0.2]}, "crop_scale"),
    ({"steps": 0}, "at least 1"),
])
def test_bad_recipes_are_refused_by_name(values, message):
    with pytest.raises(EtcbenchError, match=message):
        Recipe.from_dict(values)
    with pytest.raises(EtcbenchError, match=r"train\.vit: "):
        recipe_for({"vit": values}, "vit", "etc")


def test_step_arithmetic():
    r = Recipe(epochs=3, batch_size=64, warmup_epochs=0.5, schedule="multistep", milestones=(1, 2))
    assert r.steps_per_epoch(1000) == 15 and r.total_steps(1000) == 45 and r.epochs_run(1000) == 3
    assert r.warmup(1000) == 7 and r.milestone_steps(1000) == [15, 30]
    s = Recipe(steps=40, batch_size=64, warmup_steps=5, accumulation=4, schedule="multistep", milestones=(10,))
    assert s.total_steps(1000) == 40 and s.epochs_run(1000) == 3 and s.warmup(1000) == 5 and s.micro_batch == 16
    assert s.milestone_steps(1000) == [10]
    assert Recipe().total_steps(640) == 40  # neither epochs nor steps: 4 epochs
    with pytest.raises(EtcbenchError, match="exceeds the 10 training images"):
        Recipe(batch_size=64).steps_per_epoch(10)


@settings(max_examples=50, deadline=None)
@given(epochs=st.one_of(st.none(), st.integers(1, 500)), batch=st.integers(1, 64), accumulation=st.integers(1, 4),
       lr=st.floats(1e-6, 1.0), augment=st.sampled_from(["none", "flip", "crop_flip", "random_resized_crop"]),
       scale=st.tuples(st.floats(0.01, 0.5), st.floats(0.5, 1.0)))
def test_to_dict_round_trips(epochs, batch, accumulation, lr, augment, scale):
    recipe = Recipe(epochs=epochs, batch_size=batch * accumulation, accumulation=accumulation, lr=lr,
                    augment=augment, crop_scale=scale)
    assert Recipe.from_dict(recipe.to_dict()) == recipe
