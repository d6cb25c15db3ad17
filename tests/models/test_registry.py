"""keras_structconv/models/_registry.py: names, lookup, errors."""

import inspect
import re

import pytest

from keras_structconv import models
from keras_structconv.models import _registry


def test_every_public_builder_is_registered_under_its_model_name():
    for name in models.list_models():
        builder = models.get_builder(name)
        assert getattr(models, builder.__name__) is builder
        assert _registry._registry_name(builder) == name


def test_create_model_builds_the_named_model():
    model = models.create_model("resnet20", classes=7)
    assert model.name == "resnet20" and model.output_shape == (None, 7)
    assert model.count_params() == models.ResNet20(classes=7).count_params()


def test_unknown_name_lists_close_names():
    with pytest.raises(ValueError, match=r"Did you mean 'resnet20'.*Received: name='resnet2'"):
        models.get_builder("resnet2")


def test_a_builder_needs_a_name_default():
    def nameless(classes=10):
        return classes

    with pytest.raises(ValueError, match="`name` argument"):
        models.register_model(nameless)


def test_two_builders_cannot_share_a_name():
    def ResNet20(*, name="resnet20"):  # noqa: N802 - a builder's name, as in Keras Applications
        return name

    with pytest.raises(ValueError, match="registered already"):
        models.register_model(ResNet20)


def _documents(docstring, parameter):
    """Whether `docstring` has an "Args:" entry for `parameter`."""
    stars = {parameter.VAR_KEYWORD: "**", parameter.VAR_POSITIONAL: "*"}.get(parameter.kind, "")
    args = docstring.partition("Args:")[2]
    return re.search(rf"^\s+{re.escape(stars + parameter.name)}:", args, re.M) is not None


def test_every_registered_builder_is_keyword_only_and_documented():
    """Each argument of a builder is documented: in its own "Args:", or in those of the family it
    names ("Other arguments: as `family`"), which documents every argument it has."""
    for name in models.list_models():
        builder = models.get_builder(name)
        parameters = inspect.signature(builder).parameters.values()
        positional = [
            p.name for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
        assert positional == [], f"{name}: {positional}"
        doc = builder.__doc__ or ""
        own, _, other = doc.partition("Other arguments: as `")
        documented = {p.name for p in parameters if _documents(own, p)}
        if other:
            family = getattr(models, other.partition("`")[0])
            family_parameters = inspect.signature(family).parameters.values()
            assert all(_documents(family.__doc__, p) for p in family_parameters), family
            documented |= {p.name for p in family_parameters}
            if any(p.kind == p.VAR_KEYWORD for p in family_parameters):
                # e.g. `name`, which a variant hands to its vanilla builder in `**kwargs`
                documented |= {p.name for p in parameters if f"`{p.name}`" in family.__doc__}
        missing = [p.name for p in parameters if p.name not in documented]
        assert missing == [], f"{name}: {missing} undocumented"
