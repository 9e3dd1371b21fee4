"""Building blocks and the U-Net: shapes in 2D/3D, parameter budgets, initialisation."""

import pytest
import torch

from napari_deepreg.nets.blocks import (
    ConvBlock,
    FieldHead,
    ResidualBlock,
    count_parameters,
    make_norm,
    upsample_to,
)
from napari_deepreg.nets.unet import UNet, default_channels


@pytest.mark.parametrize("dims", [2, 3])
def test_conv_block_shapes_and_parameter_count(dims):
    x = torch.rand(2, 3, *([9] * dims))
    block = ConvBlock(3, 5, dims)
    assert block(x).shape == (2, 5, *([9] * dims))
    # stride 2 with padding 1 gives ceil(9 / 2) = 5 per axis
    assert ConvBlock(3, 5, dims, stride=2)(x).shape == (2, 5, *([5] * dims))
    # weights 3 * 5 * 3**dims plus 5 biases; with a normalisation the bias is dropped
    assert count_parameters(block) == 3 * 5 * 3**dims + 5
    assert count_parameters(ConvBlock(3, 5, dims, norm="instance")) == 3 * 5 * 3**dims


@pytest.mark.parametrize("norm", ["none", "instance", "batch", "group"])
def test_norms_keep_shape(norm):
    x = torch.rand(2, 6, 4, 5, 3)
    assert make_norm(norm, 3, 6)(x).shape == x.shape


def test_residual_block_projection():
    x = torch.rand(1, 4, 8, 8)
    assert ResidualBlock(4, 4, 2)(x).shape == (1, 4, 8, 8)
    assert ResidualBlock(4, 7, 2)(x).shape == (1, 7, 8, 8)


def test_upsample_to_exact_shape():
    x = torch.rand(1, 2, 3, 4, 5)
    assert upsample_to(x, (7, 9, 10)).shape == (1, 2, 7, 9, 10)
    assert upsample_to(x, (3, 4, 5)) is x
    # a constant stays constant under linear resizing
    c = torch.full((1, 1, 3, 3), 2.5)
    assert torch.allclose(upsample_to(c, (6, 5)), torch.full((1, 1, 6, 5), 2.5))


@pytest.mark.parametrize(
    ("dims", "shape"), [(2, (16, 16)), (2, (17, 23)), (3, (8, 8, 8)), (3, (9, 12, 7))]
)
def test_unet_output_shape_any_size(dims, shape):
    net = UNet(2, dims, dims)
    out = net(torch.rand(1, 2, *shape))
    assert out.shape == (1, dims, *shape)


@pytest.mark.parametrize("dims", [2, 3])
def test_unet_default_parameter_budget(dims):
    n = count_parameters(UNet(2, dims, dims))
    assert 100_000 <= n <= 200_000, n


def test_unet_features_and_levels():
    net = UNet(1, None, 3, channels=(8, 16, 16), decoder_channels=(16, 12))
    assert net.levels == 3
    assert net.feature_channels == 12
    assert net(torch.rand(2, 1, 8, 8, 8)).shape == (2, 12, 8, 8, 8)
    assert default_channels(3, levels=2) == default_channels(3)[:2]
    assert len(default_channels(2, levels=6)) == 6
    assert UNet(2, 2, 2, levels=2).levels == 2
    more = count_parameters(UNet(2, 2, 2, convs_per_level=2))
    assert more > count_parameters(UNet(2, 2, 2))


def test_field_head_starts_near_identity_but_trains():
    net = UNet(2, 2, 2, channels=(8, 16))
    x = torch.rand(1, 2, 12, 12)
    out = net(x)
    assert out.abs().max() < 1e-3  # N(0, 1e-5) weights, zero bias: an almost-zero field
    out.pow(2).sum().backward()
    assert net.head.conv.weight.grad is not None
    head = FieldHead(4, 3, scale=2.0)
    torch.nn.init.ones_(head.conv.weight)
    y = head(torch.ones(1, 4, 3, 3, 3))
    # centre voxel: 4 channels x 27 taps x 1 x scale 2
    assert y[0, 0, 1, 1, 1].item() == pytest.approx(4 * 27 * 2.0)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="dims must be 2 or 3"):
        UNet(2, 2, 4)
    with pytest.raises(ValueError, match="decoder_channels needs 2"):
        UNet(2, 2, 2, channels=(8, 8, 8), decoder_channels=(8,))
    with pytest.raises(ValueError, match="expects"):
        UNet(2, 2, 3)(torch.rand(1, 2, 8, 8))
    with pytest.raises(ValueError, match="head must be"):
        UNet(2, 2, 2, head="dense")


@pytest.mark.parametrize("in_channels, batch, stride, kernel", [
    (1, 2, 1, 3), (32, 1, 1, 3), (8, 1, 2, 3), (2, 1, 1, 1)])
def test_conv3d_fast_cpu_inference_path_gives_the_plain_convolution(in_channels, batch, stride,
                                                                    kernel):
    """The inference shortcuts of blocks.Conv3d (oneDNN called directly, channels-last for one
    input channel or a 1x1x1 kernel) compute the same convolution as nn.Conv3d."""
    from napari_deepreg.nets.blocks import Conv3d

    torch.manual_seed(0)
    conv = Conv3d(in_channels, 16, kernel, stride=stride, padding=kernel // 2)
    x = torch.randn(batch, in_channels, 11, 12, 13)
    expected = torch.nn.functional.conv3d(x, conv.weight, conv.bias, stride, kernel // 2)
    with torch.no_grad():
        out = conv(x)
    assert out.is_contiguous()
    torch.testing.assert_close(out, expected, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(conv(x), expected, atol=1e-4, rtol=1e-4)  # training path


@pytest.mark.parametrize("dims, in_channels, stride, bias", [(3, 1, 1, False), (3, 8, 2, False),
                                                             (2, 4, 1, False), (3, 4, 1, True)])
def test_conv_block_folds_batch_norm_at_inference(dims, in_channels, stride, bias):
    """At inference a ConvBlock with batch norm folds the running statistics into the
    convolution: the same output as convolution, normalisation and activation one by one."""
    from napari_deepreg.nets.blocks import ConvBlock

    torch.manual_seed(0)
    block = ConvBlock(in_channels, 6, dims, stride=stride, norm="batch")
    if bias:
        block[0].bias = torch.nn.Parameter(torch.randn(6))
    norm = block[1]
    norm.running_mean.normal_()
    norm.running_var.uniform_(0.5, 2.0)
    norm.weight.data.normal_()
    norm.bias.data.normal_()
    block.eval()
    x = torch.randn(2, in_channels, *[9] * dims)
    expected = block[2](block[1](block[0](x)))  # grad enabled: the unfolded path
    with torch.no_grad():
        out = block(x)
    torch.testing.assert_close(out, expected, atol=1e-4, rtol=1e-4)
    # in training the batch statistics are used, never the folded running ones
    block.train()
    with torch.no_grad():
        train_out = block(x)
    assert not torch.allclose(train_out, out, atol=1e-3)
