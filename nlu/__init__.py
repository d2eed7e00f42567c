"""Intent classification for guichet: training data, text normalisation, classifier, benchmark."""
