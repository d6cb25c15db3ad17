"""keras_structconv.export.loading: `load_model` resolves the package's classes in a fresh
process (where Keras alone cannot), names the classes a file needs that this version lacks, and
is `keras_structconv.load_model`."""

import json
import zipfile

import keras
import numpy as np
import pytest

import keras_structconv as ksc
from keras_structconv import export
from tests.export.export_testing import assert_matches, run_python


def tam_model_file(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6, 6, 8)), ksc.TreeAttention(2)])
    path = tmp_path / "tam.keras"
    model.save(path)
    x = np.random.default_rng(0).normal(size=(2, 6, 6, 8)).astype("float32")
    return model, path, x


def test_load_model_in_a_fresh_process(tmp_path):
    model, path, x = tam_model_file(tmp_path)
    np.save(tmp_path / "x.npy", x)
    plain = run_python(f"""
        import sys, keras
        keras.saving.load_model({str(path)!r})
        assert "keras_structconv" not in sys.modules
        """)
    assert plain.returncode != 0
    assert "Could not locate class 'TreeAttention'" in plain.stderr
    ours = run_python(f"""
        import numpy as np
        from keras_structconv.export import load_model
        model = load_model({str(path)!r})
        np.save({str(tmp_path / "y.npy")!r}, model.predict(np.load({str(tmp_path / "x.npy")!r})))
        """)
    assert ours.returncode == 0, ours.stderr[-3000:]
    assert_matches(np.load(tmp_path / "y.npy"), model.predict(x, verbose=0), "reloaded")


def test_load_model_names_classes_this_version_lacks(tmp_path):
    _, path, _ = tam_model_file(tmp_path)
    assert export.registered_names_in_file(path) == ["keras_structconv>TreeAttention"]
    hint = export.missing_package_hint(path)
    assert "import keras_structconv" in hint and "keras_structconv.load_model" in hint
    renamed = tmp_path / "renamed.keras"
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(renamed, "w") as target:
        for item in source.infolist():
            content = source.read(item)
            if item.filename == "config.json":
                config = content.decode().replace("TreeAttention", "TreeAttentionV9")
                content = json.dumps(json.loads(config)).encode()
            target.writestr(item, content)
    with pytest.raises(TypeError, match=r"keras_structconv>TreeAttentionV9.*another version"):
        export.load_model(renamed)


def test_load_model_is_at_the_top_level():
    assert ksc.load_model is export.load_model
