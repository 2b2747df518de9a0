// JobQueue: see README.md for what this target will hold.
