"""Text to speech: a rule-based front end (espeak-ng) whose speech is then converted into a target voice."""
