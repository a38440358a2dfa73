"""PyTorch modules written from their papers (torchvision-style ResNet, U-Net, Transformer encoder, LSTM
encoder, SegNet, MLP), exported to ONNX by the tests of archc's ONNX frontend."""
import torch
from torch import nn
import torch.nn.functional as F


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        return self.relu(out + identity)


class ResNet(nn.Module):
    """torchvision's ResNet layout (He et al. 2016), bottleneck blocks."""

    def __init__(self, layers=(3, 4, 6, 3), width=64, num_classes=1000):
        super().__init__()
        self.inplanes = width
        self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._make_layer(width, layers[0])
        self.layer2 = self._make_layer(width * 2, layers[1], 2)
        self.layer3 = self._make_layer(width * 4, layers[2], 2)
        self.layer4 = self._make_layer(width * 8, layers[3], 2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(width * 8 * 4, num_classes)

    def _make_layer(self, planes, blocks, stride=1):
        downsample = None
        if stride != 1 or self.inplanes != planes * 4:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes * 4, 1, stride, bias=False),
                                       nn.BatchNorm2d(planes * 4))
        layers = [Bottleneck(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * 4
        layers += [Bottleneck(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class DoubleConv(nn.Sequential):
    def __init__(self, cin, cout):
        super().__init__(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                         nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class UNet(nn.Module):
    """Ronneberger et al. 2015: contracting path, expanding path, skip concatenations."""

    def __init__(self, cin=3, classes=2, width=8, depth=2):
        super().__init__()
        self.inc = DoubleConv(cin, width)
        self.downs = nn.ModuleList()
        self.ups = nn.ModuleList()
        self.up_convs = nn.ModuleList()
        w = width
        for _ in range(depth):
            self.downs.append(DoubleConv(w, w * 2))
            w *= 2
        for _ in range(depth):
            self.ups.append(nn.ConvTranspose2d(w, w // 2, 2, stride=2))
            self.up_convs.append(DoubleConv(w, w // 2))
            w //= 2
        self.outc = nn.Conv2d(w, classes, 1)

    def forward(self, x):
        skips = [self.inc(x)]
        for down in self.downs:
            skips.append(down(F.max_pool2d(skips[-1], 2)))
        x = skips.pop()
        for up, conv in zip(self.ups, self.up_convs):
            x = conv(torch.cat([skips.pop(), up(x)], dim=1))
        return self.outc(x)


class EncoderLayer(nn.Module):
    """Vaswani et al. 2017 encoder layer (post-norm), or the pre-norm order (Xiong et al. 2020)."""

    def __init__(self, d=16, heads=2, ff=32, pre_norm=False):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.linear1 = nn.Linear(d, ff)
        self.linear2 = nn.Linear(ff, d)
        self.norm1 = nn.LayerNorm(d)
        self.norm2 = nn.LayerNorm(d)
        self.pre_norm = pre_norm

    def _sa(self, x):
        return self.self_attn(x, x, x, need_weights=False)[0]

    def _ff(self, x):
        return self.linear2(F.relu(self.linear1(x)))

    def forward(self, x):
        if self.pre_norm:
            x = x + self._sa(self.norm1(x))
            return x + self._ff(self.norm2(x))
        x = self.norm1(x + self._sa(x))
        return self.norm2(x + self._ff(x))


class TransformerEncoder(nn.Module):
    def __init__(self, d=16, layers=2, pre_norm=False, vocab=20):
        super().__init__()
        self.embed = nn.Linear(8, d)
        self.layers = nn.ModuleList(EncoderLayer(d, pre_norm=pre_norm) for _ in range(layers))
        self.head = nn.Linear(d, 4)

    def forward(self, x):
        x = self.embed(x)
        for layer in self.layers:
            x = layer(x)
        return self.head(x)


class LSTMEncoder(nn.Module):
    """Sutskever et al. 2014 encoder: stacked LSTM, last hidden state to a classifier."""

    def __init__(self, n_in=6, hidden=12, layers=2, classes=3):
        super().__init__()
        self.lstm = nn.LSTM(n_in, hidden, layers, batch_first=True)
        self.fc = nn.Linear(hidden, classes)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.fc(out[:, -1])


class SegNet(nn.Module):
    """Badrinarayanan et al. 2017: pooling indices carried from encoder to decoder."""

    def __init__(self, cin=3, classes=4, width=8):
        super().__init__()
        self.enc1 = nn.Sequential(nn.Conv2d(cin, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU())
        self.enc2 = nn.Sequential(nn.Conv2d(width, width * 2, 3, padding=1), nn.BatchNorm2d(width * 2), nn.ReLU())
        self.dec2 = nn.Sequential(nn.Conv2d(width * 2, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU())
        self.dec1 = nn.Conv2d(width, classes, 3, padding=1)
        self.pool = nn.MaxPool2d(2, 2, return_indices=True)
        self.unpool = nn.MaxUnpool2d(2, 2)

    def forward(self, x):
        x, i1 = self.pool(self.enc1(x))
        x, i2 = self.pool(self.enc2(x))
        x = self.dec2(self.unpool(x, i2))
        return self.dec1(self.unpool(x, i1))


class MLP(nn.Module):
    def __init__(self, n_in=10, hidden=32, classes=5, approximate="none"):
        super().__init__()
        self.fc1 = nn.Linear(n_in, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.fc3 = nn.Linear(hidden, classes)
        self.approximate = approximate

    def forward(self, x):
        x = F.gelu(self.fc1(x), approximate=self.approximate)
        x = F.gelu(self.fc2(x), approximate=self.approximate)
        return self.fc3(x)
