"""The checks a multiple-choice item must pass against its caption: the phrasing both sides share, the truth
oracle that reads an option against the caption, and the validator. The QA generator runs them on what it
writes; the review desk runs the same ones on what a reviewer edits or adds."""
