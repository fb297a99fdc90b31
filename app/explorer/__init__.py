"""The torch-free embedding space, shared by worker and API: neighbours, 2-D layouts, aligned layouts,
reading and exporting a job's stored embeddings."""
