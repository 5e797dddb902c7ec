"""Image classifiers of the image-folder task kind: ResNet-18, DenseNet-121 and a small CNN.

ResNet-18 (He, Zhang, Ren, Sun: "Deep Residual Learning for Image Recognition", CVPR 2016,
arXiv:1512.03385) and DenseNet-121 (Huang, Liu, van der Maaten, Weinberger: "Densely Connected
Convolutional Networks", CVPR 2017, arXiv:1608.06993) are written here module for module as
torchvision 0.28 builds them: same submodule names in the same order, same shapes, same
initialisation. So a torchvision ``state_dict`` saved with ``torch.save`` (ImageNet weights, or a
model a hospital trained elsewhere) loads as is, and under the same seed the initial weights are
the bytes torchvision would draw. Why not torchvision itself: its wheels pull a CUDA build of
torch on this platform, gigabytes for two small files of module definitions.

Every model outputs ``(batch, classes)`` logits (cross-entropy). BatchNorm's running mean and
variance are float buffers: they travel in updates and FedAvg averages them like weights;
``num_batches_tracked`` is int64 and is kept from the base (swarm.merge.fedavg).

Input sizes: ResNet-18 halves the image five times and takes any size of at least 1 pixel;
DenseNet-121 average-pools after its third dense block and needs at least 32 x 32
(:data:`MIN_IMAGE_SIZE`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional

from swarm.training.models import build_seeded

#: smallest image side each architecture accepts (below it a pooling layer has nothing to pool)
MIN_IMAGE_SIZE: dict[str, int] = {"resnet18": 1, "densenet121": 32, "cnn": 4}


# --- ResNet-18 -------------------------------------------------------------------------------


def _conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions and a shortcut: ``relu(bn2(conv2(relu(bn1(conv1(x))))) + x)``.

    ``downsample`` (a 1x1 convolution and a BatchNorm) adapts the shortcut where the block
    changes the stride or the width.
    """

    def __init__(
        self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.conv1 = _conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += identity
        return self.relu(out)


class ResNet(nn.Module):
    """ResNet with :class:`BasicBlock` stages (ResNet-18: two blocks per stage).

    (batch, C, H, W) -> conv1 7x7/2 -> maxpool 3x3/2 -> layer1..layer4 (64, 128, 256, 512
    channels; stride 2 from layer2 on) -> global average pool -> fc -> (batch, classes).
    """

    def __init__(self, layers: tuple[int, int, int, int], num_classes: int, in_channels: int):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(
            in_channels, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False
        )
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(64, layers[0])
        self.layer2 = self._make_layer(128, layers[1], stride=2)
        self.layer3 = self._make_layer(256, layers[2], stride=2)
        self.layer4 = self._make_layer(512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512, num_classes)
        # torchvision's initialisation, in its module order (so a seed draws the same bytes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.constant_(module.weight, 1)
                nn.init.constant_(module.bias, 0)

    def _make_layer(self, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(planes),
            )
        stage = [BasicBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes
        stage += [BasicBlock(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*stage)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))  # (batch, 64, H/4, W/4)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))  # (batch, 512, H/32, W/32)
        x = torch.flatten(self.avgpool(x), 1)  # (batch, 512)
        return self.fc(x)  # (batch, classes)


# --- DenseNet-121 ----------------------------------------------------------------------------


class _DenseLayer(nn.Module):
    """BN-ReLU-conv 1x1 (bottleneck to ``bn_size * growth`` channels), BN-ReLU-conv 3x3 (to
    ``growth`` channels), on the concatenation of every earlier feature map of its block."""

    def __init__(self, num_input_features: int, growth_rate: int, bn_size: int) -> None:
        super().__init__()
        width = bn_size * growth_rate
        self.norm1 = nn.BatchNorm2d(num_input_features)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(num_input_features, width, kernel_size=1, stride=1, bias=False)
        self.norm2 = nn.BatchNorm2d(width)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(width, growth_rate, kernel_size=3, stride=1, padding=1, bias=False)

    def forward(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        bottleneck = self.conv1(self.relu1(self.norm1(torch.cat(inputs, 1))))
        return self.conv2(self.relu2(self.norm2(bottleneck)))  # (batch, growth, H, W)


class _DenseBlock(nn.ModuleDict):
    """``denselayer1..N``; the block's output is its input and every layer's output, stacked."""

    def __init__(
        self, num_layers: int, num_input_features: int, bn_size: int, growth_rate: int
    ) -> None:
        super().__init__()
        for index in range(num_layers):
            layer = _DenseLayer(num_input_features + index * growth_rate, growth_rate, bn_size)
            self.add_module(f"denselayer{index + 1}", layer)

    def forward(self, init_features: torch.Tensor) -> torch.Tensor:
        features = [init_features]
        for layer in self.values():
            features.append(layer(features))
        return torch.cat(features, 1)


class _Transition(nn.Sequential):
    """BN-ReLU-conv 1x1 (halving the channels) and a 2x2 average pool between dense blocks."""

    def __init__(self, num_input_features: int, num_output_features: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(num_input_features)
        self.relu = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(
            num_input_features, num_output_features, kernel_size=1, stride=1, bias=False
        )
        self.pool = nn.AvgPool2d(kernel_size=2, stride=2)


class DenseNet(nn.Module):
    """DenseNet-BC: ``features`` (conv0, norm0, pool0, denseblock1, transition1, ..., norm5),
    then ReLU, global average pool and ``classifier``. No dropout (torchvision's default)."""

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        growth_rate: int = 32,
        block_config: tuple[int, ...] = (6, 12, 24, 16),
        num_init_features: int = 64,
        bn_size: int = 4,
    ) -> None:
        super().__init__()
        self.features = nn.Sequential(
            OrderedDict(
                [
                    (
                        "conv0",
                        nn.Conv2d(
                            in_channels,
                            num_init_features,
                            kernel_size=7,
                            stride=2,
                            padding=3,
                            bias=False,
                        ),
                    ),
                    ("norm0", nn.BatchNorm2d(num_init_features)),
                    ("relu0", nn.ReLU(inplace=True)),
                    ("pool0", nn.MaxPool2d(kernel_size=3, stride=2, padding=1)),
                ]
            )
        )
        num_features = num_init_features
        for index, num_layers in enumerate(block_config):
            block = _DenseBlock(num_layers, num_features, bn_size, growth_rate)
            self.features.add_module(f"denseblock{index + 1}", block)
            num_features += num_layers * growth_rate
            if index != len(block_config) - 1:
                transition = _Transition(num_features, num_features // 2)
                self.features.add_module(f"transition{index + 1}", transition)
                num_features //= 2
        self.features.add_module("norm5", nn.BatchNorm2d(num_features))
        self.classifier = nn.Linear(num_features, num_classes)
        # torchvision's initialisation, in its module order
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.constant_(module.weight, 1)
                nn.init.constant_(module.bias, 0)
            elif isinstance(module, nn.Linear):
                nn.init.constant_(module.bias, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = functional.relu(self.features(x), inplace=True)  # (batch, 1024, H/32, W/32)
        out = torch.flatten(functional.adaptive_avg_pool2d(out, (1, 1)), 1)  # (batch, 1024)
        return self.classifier(out)  # (batch, classes)


# --- a small CNN for tests and tiny data ------------------------------------------------------


class SmallCNN(nn.Module):
    """conv 3x3 (16) - BN - ReLU - maxpool 2, conv 3x3 (32) - BN - ReLU - maxpool 2, global
    average pool, fc: a few thousand parameters, so tests and demos train in milliseconds while
    exercising what the large models have (convolutions, BatchNorm buffers)."""

    def __init__(self, num_classes: int, in_channels: int = 3, width: int = 16) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, kernel_size=3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, 2 * width, kernel_size=3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(2 * width)
        self.fc = nn.Linear(2 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = functional.max_pool2d(torch.relu(self.bn1(self.conv1(x))), 2)  # (batch, w, H/2, W/2)
        x = functional.max_pool2d(torch.relu(self.bn2(self.conv2(x))), 2)  # (batch, 2w, H/4, W/4)
        x = torch.flatten(functional.adaptive_avg_pool2d(x, (1, 1)), 1)  # (batch, 2w)
        return self.fc(x)  # (batch, classes)


# --- builders --------------------------------------------------------------------------------


def resnet18(num_classes: int, in_channels: int = 3, seed: int | None = None) -> nn.Module:
    """ResNet-18 (11,689,512 parameters with 1000 classes), torchvision's layout.

    ``seed`` given: initial weights drawn from it (same seed, same bytes); else from the
    caller's global RNG, as torchvision does.
    """
    _check_shape(num_classes, in_channels)
    return _build(lambda: ResNet((2, 2, 2, 2), num_classes, in_channels), seed)


def densenet121(num_classes: int, in_channels: int = 3, seed: int | None = None) -> nn.Module:
    """DenseNet-121 (7,978,856 parameters with 1000 classes), torchvision's layout."""
    _check_shape(num_classes, in_channels)
    return _build(lambda: DenseNet(num_classes, in_channels), seed)


def cnn(num_classes: int, in_channels: int = 3, seed: int | None = None) -> nn.Module:
    """:class:`SmallCNN`."""
    _check_shape(num_classes, in_channels)
    return _build(lambda: SmallCNN(num_classes, in_channels), seed)


#: the architectures a task file may name, by their name there
ARCHITECTURES: dict[str, Callable[[int, int, int | None], nn.Module]] = {
    "resnet18": resnet18,
    "densenet121": densenet121,
    "cnn": cnn,
}


def _check_shape(num_classes: int, in_channels: int) -> None:
    if num_classes < 1 or in_channels < 1:
        raise ValueError(
            f"num_classes and in_channels must be positive: {num_classes}, {in_channels}"
        )


def _build(factory: Callable[[], nn.Module], seed: int | None) -> nn.Module:
    return factory() if seed is None else build_seeded(factory, seed)
