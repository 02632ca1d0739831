"""
Network architectures for `~m31clusters.classifier.ClusterClassifier`.

Every architecture maps a batch of ``(H, W, C)`` stamps (channels last, one
channel per band) to one sigmoid output, the probability that the stamp is
a star cluster.  The ImageNet architectures come from
:mod:`keras.applications` with ``weights=None`` (so any number of channels
is allowed) and ``include_top=False``; a ``GlobalAveragePooling2D`` and a
``Dense(1, activation="sigmoid")`` head are added on top.

Those architectures need inputs of at least 32 x 32 pixels.  Smaller stamps
are enlarged *inside the model* by a bilinear ``keras.layers.Resizing``
layer, so the saved model still takes the original stamp size.

Only standard, registered Keras layers are used (no ``Lambda``), so every
model can be saved and loaded with Keras ``safe_mode=True``.

XLA:CPU runs a 3 x 3 convolution on a feature map smaller than its kernel
(the 2 x 2 maps of ResNet-50's last stage for 64 x 64 stamps) about 100
times slower than other convolutions of the same cost.  `build_model`
therefore replaces such convolutions (stride 1, ``"same"`` padding, channels
last) by `SmallInputConv2D`, a registered ``Conv2D`` subclass with the same
weights that computes them as one matrix product over the shifted inputs
(see ``benchmarks/bench_xla_vs_torch.py``).
"""

import contextlib
import warnings

__all__ = ["ARCHITECTURES", "MIN_INPUT_SIZE", "build_model", "small_input_conv2d"]

#: Names accepted by `build_model` (and by ``ClusterClassifier(architecture=...)``).
ARCHITECTURES = (
    "resnet50",
    "resnet18",
    "vgg16",
    "densenet121",
    "efficientnetb0",
    "mobilenetv2",
    "wang2022",
    "simple",
)

#: Smallest stamp side (pixels) each architecture accepts without resizing.
MIN_INPUT_SIZE = {
    "resnet50": 32,
    "resnet18": 32,
    "vgg16": 32,
    "densenet121": 32,
    "efficientnetb0": 32,
    "mobilenetv2": 32,
    "wang2022": 16,
    "simple": 8,
}

_APPLICATIONS = {
    "resnet50": "ResNet50",
    "vgg16": "VGG16",
    "densenet121": "DenseNet121",
    "efficientnetb0": "EfficientNetB0",
    "mobilenetv2": "MobileNetV2",
}


def _check_input_shape(input_shape):
    try:
        shape = tuple(int(s) for s in input_shape)
    except (TypeError, ValueError):
        raise ValueError(
            f"input_shape must be a tuple (H, W, C) of positive integers; got {input_shape!r}"
        ) from None
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(
            f"input_shape must be a tuple (H, W, C) of positive integers; got {input_shape!r}"
        )
    return shape


def _channel_axis():
    import keras

    return 1 if keras.config.image_data_format() == "channels_first" else -1


@contextlib.contextmanager
def _image_data_format(data_format):
    """Temporarily set Keras' global image data format (layers record it)."""
    import keras

    saved = keras.config.image_data_format()
    keras.config.set_image_data_format(data_format)
    try:
        yield
    finally:
        keras.config.set_image_data_format(saved)


def _conv_bn_relu(x, filters, kernel, strides=1, name=None):
    from keras import layers

    x = layers.Conv2D(
        filters, kernel, strides=strides, padding="same", use_bias=False, name=f"{name}_conv"
    )(x)
    x = layers.BatchNormalization(axis=_channel_axis(), name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def _resnet18_body(x):
    """ResNet-18 (He et al. 2016, basic blocks [2, 2, 2, 2])."""
    from keras import layers

    x = _conv_bn_relu(x, 64, 7, strides=2, name="stem")
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)
    for stage, filters in enumerate((64, 128, 256, 512)):
        for block in range(2):
            strides = 2 if (block == 0 and stage > 0) else 1
            name = f"stage{stage + 1}_block{block + 1}"
            shortcut = x
            y = _conv_bn_relu(x, filters, 3, strides=strides, name=f"{name}_a")
            y = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_b_conv")(
                y
            )
            y = layers.BatchNormalization(axis=_channel_axis(), name=f"{name}_b_bn")(y)
            if strides != 1 or shortcut.shape[_channel_axis()] != filters:
                shortcut = layers.Conv2D(
                    filters, 1, strides=strides, use_bias=False, name=f"{name}_proj_conv"
                )(shortcut)
                shortcut = layers.BatchNormalization(axis=_channel_axis(), name=f"{name}_proj_bn")(
                    shortcut
                )
            x = layers.Add(name=f"{name}_add")([shortcut, y])
            x = layers.ReLU(name=f"{name}_out")(x)
    return x


def _wang2022_body(x):
    """Compact two-band CNN in the spirit of Wang et al. (2022)."""
    from keras import layers

    for i, filters in enumerate((32, 64, 128)):
        x = _conv_bn_relu(x, filters, 3, name=f"block{i + 1}_a")
        x = _conv_bn_relu(x, filters, 3, name=f"block{i + 1}_b")
        x = layers.MaxPooling2D(2, name=f"block{i + 1}_pool")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dense(128, activation="relu", name="fc")(x)
    return layers.Dropout(0.3, name="fc_dropout")(x)


def _simple_body(x):
    """A small CNN (about 14,500 weights) for tests and examples."""
    from keras import layers

    for i, filters in enumerate((16, 32, 32)):
        x = _conv_bn_relu(x, filters, 3, name=f"conv{i + 1}")
        if i < 2:
            x = layers.MaxPooling2D(2, name=f"pool{i + 1}")(x)
    avg = layers.GlobalAveragePooling2D(name="gap")(x)
    peak = layers.GlobalMaxPooling2D(name="gmp")(x)
    return layers.Concatenate(name="pooled")([avg, peak])


def build_model(architecture="resnet50", input_shape=(64, 64, 2), data_format="channels_last"):
    """
    Build an untrained binary classification network.

    Parameters
    ----------
    architecture : str
        One of `ARCHITECTURES`: ``"resnet50"`` (the paper's network, from
        `keras.applications`), ``"resnet18"``, ``"vgg16"``, ``"densenet121"``,
        ``"efficientnetb0"``, ``"mobilenetv2"``, ``"wang2022"`` (a compact
        CNN for two-band stamps) or ``"simple"`` (a tiny CNN for tests).
    input_shape : tuple of int
        ``(H, W, C)``: stamp height and width in pixels and number of bands.
        Stamps smaller than ``MIN_INPUT_SIZE[architecture]`` are resized
        inside the model (a bilinear ``Resizing`` layer).
    data_format : {"channels_last", "channels_first"}, optional
        Internal layout of the network.  The model always *takes*
        ``(N, H, W, C)`` stamps; with ``"channels_first"`` a ``Permute``
        layer turns them into ``(N, C, H, W)`` first.  Same seed, same
        weights and outputs in both layouts (see
        ``benchmarks/bench_classifier.py`` for their speed).

    Returns
    -------
    model : `keras.Model`
        A functional model named ``architecture``, taking ``(N, H, W, C)``
        float32 arrays and returning ``(N, 1)`` probabilities.  The weights
        are initialised from Keras' global random state: call
        ``keras.utils.set_random_seed`` first for reproducible weights.

    Raises
    ------
    ValueError
        If *architecture* is unknown or *input_shape* is not ``(H, W, C)``.

    Notes
    -----
    `keras.applications.EfficientNetB0` starts with fixed ``Rescaling(1/255)``
    and ``Normalization`` layers meant for 8-bit images; they are harmless
    (batch normalisation follows) but scale the normalised stamps down.

    Examples
    --------
    >>> from m31clusters.models import build_model
    >>> model = build_model("simple", input_shape=(16, 16, 2))
    >>> model.input_shape, model.output_shape
    ((None, 16, 16, 2), (None, 1))
    """
    if not isinstance(architecture, str) or architecture.lower() not in ARCHITECTURES:
        raise ValueError(
            f"unknown architecture {architecture!r}; choose one of {', '.join(ARCHITECTURES)}"
            " or pass a keras.Model"
        )
    architecture = architecture.lower()
    shape = _check_input_shape(input_shape)
    if data_format not in ("channels_last", "channels_first"):
        raise ValueError(
            f"data_format must be 'channels_last' or 'channels_first'; got {data_format!r}"
        )

    import keras
    from keras import layers

    inputs = keras.Input(shape=shape, name="stamps")
    x = inputs
    minimum = MIN_INPUT_SIZE[architecture]
    if shape[0] < minimum or shape[1] < minimum:
        x = layers.Resizing(
            max(shape[0], minimum),
            max(shape[1], minimum),
            interpolation="bilinear",
            data_format="channels_last",
            name="resize",
        )(x)
    if data_format == "channels_first":
        x = layers.Permute((3, 1, 2), name="to_channels_first")(x)
    with _image_data_format(data_format):
        x = _body(architecture, x)
    outputs = layers.Dense(1, activation="sigmoid", dtype="float32", name="probability")(x)
    return _swap_small_input_convs(keras.Model(inputs, outputs, name=architecture))


def small_input_conv2d():
    """
    The `keras.layers.Conv2D` subclass used for convolutions on small maps.

    ``SmallInputConv2D`` has the configuration and weights of a ``Conv2D``
    (stride 1, ``"same"`` padding, channels last, no dilation or groups) and
    the same outputs; it pads the input, stacks the ``kh * kw`` shifted
    copies along the channel axis and multiplies by the reshaped kernel.  On
    feature maps smaller than the kernel this avoids a very slow XLA:CPU
    convolution path.  It is registered with Keras (package
    ``"m31clusters"``) when this function is first called, which
    `build_model` and `ClusterClassifier.load
    <m31clusters.classifier.ClusterClassifier.load>` do.

    Returns
    -------
    type
        The layer class.

    Examples
    --------
    >>> import numpy as np
    >>> import keras
    >>> from m31clusters.models import small_input_conv2d
    >>> x = np.random.default_rng(0).normal(size=(4, 2, 2, 8)).astype("float32")
    >>> conv = keras.layers.Conv2D(5, 3, padding="same")
    >>> small = small_input_conv2d().from_config(conv.get_config())
    >>> _ = conv(x), small(x)
    >>> for mine, theirs in zip(small.weights, conv.weights):
    ...     _ = mine.assign(theirs.value)
    >>> bool(np.allclose(conv(x), small(x), atol=1e-5))
    True
    """
    global _SMALL_INPUT_CONV2D
    if _SMALL_INPUT_CONV2D is None:
        import keras

        @keras.saving.register_keras_serializable(package="m31clusters")
        class SmallInputConv2D(keras.layers.Conv2D):
            """``Conv2D`` computed as one matrix product (for maps smaller than the kernel)."""

            def call(self, inputs):
                from keras import ops

                kh, kw = self.kernel_size
                h, w = inputs.shape[1], inputs.shape[2]
                # "same" padding as Keras/XLA: the extra row/column goes at the end
                pads = [[0, 0], [(kh - 1) // 2, kh // 2], [(kw - 1) // 2, kw // 2], [0, 0]]
                padded = ops.pad(inputs, pads)
                shifted = [padded[:, i:i + h, j:j + w, :] for i in range(kh) for j in range(kw)]
                cols = ops.concatenate(shifted, axis=-1)
                kernel = ops.reshape(self.kernel, (-1, self.filters))
                out = ops.matmul(cols, kernel)
                if self.use_bias:
                    out = out + self.bias
                if self.activation is not None:
                    out = self.activation(out)
                return out

        _SMALL_INPUT_CONV2D = SmallInputConv2D
    return _SMALL_INPUT_CONV2D


_SMALL_INPUT_CONV2D = None


def _is_small_input_conv(layer):
    import keras

    if type(layer) is not keras.layers.Conv2D:
        return False
    try:
        shape = layer.input.shape
    except (AttributeError, ValueError):  # used more than once, or not built
        return False
    kh, kw = layer.kernel_size
    return (
        layer.data_format == "channels_last"
        and tuple(layer.strides) == (1, 1)
        and tuple(layer.dilation_rate) == (1, 1)
        and layer.groups == 1
        and layer.padding == "same"
        and shape[1] is not None
        and shape[2] is not None
        and (shape[1] < kh or shape[2] < kw)
    )


def _swap_small_input_convs(model):
    """
    Turn, in place, the convolutions of *model* where XLA's convolution would
    be slow into `SmallInputConv2D`; returns *model*.

    ``SmallInputConv2D`` only overrides ``call`` (same configuration, same
    variables), so the layer keeps its weights and its place in the graph;
    nothing is rebuilt or copied.
    """
    import keras

    layers = list(model.layers)
    while layers:
        layer = layers.pop()
        if isinstance(layer, keras.Model):
            layers.extend(layer.layers)
        elif _is_small_input_conv(layer):
            layer.__class__ = small_input_conv2d()
    return model


def _body(architecture, x):
    """The network between the (permuted) input and the sigmoid head."""
    import keras
    from keras import layers

    if architecture in _APPLICATIONS:
        factory = getattr(keras.applications, _APPLICATIONS[architecture])
        with warnings.catch_warnings():
            # weights=None allows any number of channels; Keras still warns
            # that it "usually expects 1 or 3 input channels".
            warnings.filterwarnings("ignore", message="This model usually expects")
            base = factory(include_top=False, weights=None, input_shape=tuple(x.shape[1:]))
        x = base(x)
        x = layers.GlobalAveragePooling2D(name="gap")(x)
    elif architecture == "resnet18":
        x = _resnet18_body(x)
        x = layers.GlobalAveragePooling2D(name="gap")(x)
    elif architecture == "wang2022":
        x = _wang2022_body(x)
    else:
        x = _simple_body(x)
    return x
