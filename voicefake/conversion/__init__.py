"""Voice conversion: a speaker-robust content encoder and kNN matching into a target's mels."""
