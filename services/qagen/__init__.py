"""QA generation: multiple-choice items in HAIC's and ActionArt's categories from structured captions."""
