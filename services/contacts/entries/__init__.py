"""A contact's qualitative entries: notes, reviews, ratings, feedback and suggestions, with scores."""
