"""The dataset layer every data engine shares (reference §3.2): which S3 files a range selects, streaming and
decompressing them, parsing their rows per the dataset, and the dataset's column types as SQL."""
