"""grade.py's pieces: reading a submitted file safely (loaders), telling which model its arrays are
(identify), evaluating them with the kit's models (evaluate), one worker process per file under limits
(workers), and the gradebook: duplicates, z-scores, grades.csv, summary.md, results.json (gradebook)."""
