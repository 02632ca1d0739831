"""Tests for m31clusters.models (building only; no ResNet-50 training)."""

import warnings

import numpy as np
import pytest

from m31clusters.models import ARCHITECTURES, MIN_INPUT_SIZE, build_model


def _layer_names(model):
    return {layer.name for layer in model.layers}


@pytest.mark.parametrize("architecture", ["simple", "wang2022", "resnet18"])
def test_small_architectures_forward(architecture):
    model = build_model(architecture, input_shape=(24, 24, 2))
    assert model.name == architecture
    assert model.input_shape == (None, 24, 24, 2) and model.output_shape == (None, 1)
    x = np.random.default_rng(0).normal(size=(3, 24, 24, 2)).astype("float32")
    p = np.asarray(model.predict_on_batch(x))
    assert p.shape == (3, 1) and np.all((p > 0) & (p < 1))


@pytest.mark.parametrize("architecture", ["simple", "resnet18"])
def test_channels_first_layout_gives_the_same_network(architecture):
    """Same seed, other internal layout: same weights, same outputs."""
    import keras

    x = np.random.default_rng(2).normal(size=(3, 20, 20, 2)).astype("float32")
    out = []
    for fmt in ("channels_last", "channels_first"):
        keras.utils.set_random_seed(0)
        model = build_model(architecture, input_shape=(20, 20, 2), data_format=fmt)
        assert model.input_shape == (None, 20, 20, 2)
        out.append(np.asarray(model.predict_on_batch(x)))
    assert keras.config.image_data_format() == "channels_last"  # restored
    np.testing.assert_allclose(out[1], out[0], rtol=1e-5, atol=1e-6)


def test_resnet18_structure():
    """ResNet-18: 1 stem conv + 8 basic blocks of 2 convs + 3 projection shortcuts."""
    import keras

    model = build_model("resnet18", input_shape=(64, 64, 2))
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert len(convs) == 1 + 16 + 3
    assert model.get_layer("stage4_block2_b_conv").filters == 512
    # The reference ResNet-18 (He et al. 2016, as in torchvision) has 11,689,512
    # trainable weights with its 512 -> 1000 top and 3 input channels (64*7*7
    # more stem weights than 2 channels).
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert trainable == 11_689_512 - (512 * 1000 + 1000) - 64 * 7 * 7 + (512 + 1)


def test_resnet50_matches_keras_applications():
    import keras

    model = build_model("resnet50", input_shape=(64, 64, 2))
    assert "resize" not in _layer_names(model)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="This model usually expects")
        base = keras.applications.ResNet50(include_top=False, weights=None, input_shape=(64, 64, 2))
    # the body plus a 2048 -> 1 sigmoid head
    assert model.count_params() == base.count_params() + 2048 + 1
    # the published ImageNet ResNet-50 has 25,636,712 weights: 2048*1000+1000 in
    # its top and 64*7*7 more stem weights for 3 input channels
    assert base.count_params() == 25_636_712 - 2_049_000 - 64 * 7 * 7


@pytest.mark.parametrize(
    "architecture",
    [
        "vgg16",
        "mobilenetv2",
        pytest.param("densenet121", marks=pytest.mark.slow),
        pytest.param("efficientnetb0", marks=pytest.mark.slow),
    ],
)
def test_application_architectures_build(architecture):
    model = build_model(architecture, input_shape=(32, 32, 2))
    assert model.output_shape == (None, 1)
    assert model.layers[-1].activation.__name__ == "sigmoid"


def test_small_inputs_are_resized_inside_the_model(tmp_path):
    import keras

    model = build_model("resnet18", input_shape=(20, 20, 2), data_format="channels_first")
    assert isinstance(model.get_layer("to_channels_first"), keras.layers.Permute)
    resize = model.get_layer("resize")
    assert isinstance(resize, keras.layers.Resizing)
    assert (resize.height, resize.width) == (MIN_INPUT_SIZE["resnet18"],) * 2
    assert model.input_shape == (None, 20, 20, 2)
    # no Lambda layers: the model round-trips with safe_mode=True
    path = tmp_path / "m.keras"
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*__array__ implementation doesn't")
        model.save(path)
    again = keras.saving.load_model(path, safe_mode=True, compile=False)
    x = np.random.default_rng(1).normal(size=(2, 20, 20, 2)).astype("float32")
    np.testing.assert_allclose(again.predict_on_batch(x), model.predict_on_batch(x), atol=1e-6)


@pytest.mark.parametrize(("architecture", "size", "swapped"),
                         [("resnet18", 64, 3), ("resnet50", 64, 3), ("resnet50", 32, 9)])
def test_convolutions_on_small_maps_use_matrix_products(tmp_path, architecture, size, swapped):
    """3x3 convolutions on 2x2 or 1x1 maps (ResNet-50 at 32x32: 6 in stage 4, 3 in
    stage 5) are swapped for SmallInputConv2D
    (XLA:CPU runs them ~100x slower); the network computes the same thing as
    the channels-first build, which keeps plain Conv2D layers."""
    import keras

    from m31clusters.classifier import ClusterClassifier
    from m31clusters.models import small_input_conv2d

    def small_convs(model):
        found = []
        for layer in model.layers:
            if isinstance(layer, keras.Model):
                found += small_convs(layer)
            elif type(layer) is small_input_conv2d():
                found.append(layer)
        return found

    x = np.random.default_rng(3).normal(size=(4, size, size, 2)).astype("float32")
    out = {}
    for fmt in ("channels_last", "channels_first"):
        keras.utils.set_random_seed(0)
        model = build_model(architecture, input_shape=(size, size, 2), data_format=fmt)
        out[fmt] = np.asarray(model.predict_on_batch(x))
        if fmt == "channels_last":
            small = small_convs(model)
            assert len(small) == swapped
            assert all(la.kernel_size == (3, 3) and la.input.shape[1] < 3 for la in small)
            last = model
    assert small_convs(model) == []
    np.testing.assert_allclose(out["channels_last"], out["channels_first"], rtol=1e-4, atol=1e-5)
    # saved and loaded with safe_mode=True through the classifier
    if architecture == "resnet18":
        clf = ClusterClassifier(last, input_shape=(size, size, 2))
        clf.save(tmp_path / "c.zip")
        again = ClusterClassifier.load(tmp_path / "c.zip")
        assert len(small_convs(again.model)) == swapped
        np.testing.assert_allclose(again.model.predict_on_batch(x), out["channels_last"],
                                   atol=1e-6)


def test_bad_arguments():
    assert "resnet50" in ARCHITECTURES and "simple" in ARCHITECTURES
    with pytest.raises(ValueError, match="unknown architecture 'lenet'"):
        build_model("lenet")
    with pytest.raises(ValueError, match="input_shape"):
        build_model("simple", input_shape=(16, 16))
    with pytest.raises(ValueError, match="input_shape"):
        build_model("simple", input_shape=(16, 0, 2))
    with pytest.raises(ValueError, match="data_format"):
        build_model("simple", input_shape=(16, 16, 2), data_format="NHWC")
