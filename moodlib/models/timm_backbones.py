"""ImageNet-family backbones from timm, used on mel spectrograms as one-channel images.

HCMUS (MediaEval 2020) used EfficientNet-B0 with SpecAugment; SELAB-HCMUS (2021) trained
EfficientNet-B0, ReXNet-100 and MobileNetV2 with co-teaching. timm builds them
(``in_chans=1``); the wrapper only adds the channel axis and the embedding hook.
"""

from __future__ import annotations

import torch
from torch import nn

from moodlib.models.registry import register_model


class TimmTagger(nn.Module):
    """A timm classifier taking ``(batch, n_mels, frames)`` mel spectrograms."""

    def __init__(self, timm_name: str, num_classes: int = 56, **timm_kwargs) -> None:
        super().__init__()
        # Imported here: timm pulls in torchvision and torch._dynamo, seconds of start-up that
        # only packs holding a timm backbone should pay.
        import timm

        self.backbone = timm.create_model(
            timm_name, pretrained=False, num_classes=num_classes, in_chans=1, **timm_kwargs
        )

    def forward_with_embedding(self, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.backbone.forward_features(mel.unsqueeze(1))
        embedding = self.backbone.forward_head(features, pre_logits=True)
        return self.backbone.get_classifier()(embedding), embedding

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.backbone(mel.unsqueeze(1))


@register_model
def efficientnet_b0(num_classes: int = 56, **kwargs) -> TimmTagger:
    return TimmTagger("efficientnet_b0", num_classes=num_classes, **kwargs)


@register_model
def rexnet_100(num_classes: int = 56, **kwargs) -> TimmTagger:
    return TimmTagger("rexnet_100", num_classes=num_classes, **kwargs)


@register_model
def mobilenetv2_100(num_classes: int = 56, **kwargs) -> TimmTagger:
    return TimmTagger("mobilenetv2_100", num_classes=num_classes, **kwargs)
