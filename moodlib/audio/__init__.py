"""Audio input: decoding files to waveforms and the mel-spectrogram frontend."""

from moodlib.audio.decode import AUDIO_EXTENSIONS, AudioInfo, DecodeError, decode, probe
from moodlib.audio.frontend import MelFrontend, mel_filterbank, mel_frequencies

__all__ = [
    "AUDIO_EXTENSIONS",
    "AudioInfo",
    "DecodeError",
    "MelFrontend",
    "decode",
    "mel_filterbank",
    "mel_frequencies",
    "probe",
]
