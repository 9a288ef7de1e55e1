"""Mel-spectrogram GAN vocoder (Vocos / HiFi-GAN generators)."""
