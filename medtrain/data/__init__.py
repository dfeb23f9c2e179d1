"""The data path: one document from a file to a row of a batch, through one module per step.

    sources       find files, plan work units, read records with their origin (file, line)
    line_blocks   the readers' fast path: line files a block at a time, parsed in compiled code
    tokenization  tokenizers described by a picklable spec; pretraining text -> ids (TextEncoder)
    conversations SFT records -> ids and a trained-token mask (ConversationEncoder, chat_templates)
    encoding      the encoder protocol both implement, and EncodedDocument
    documents     the one read -> hold-out -> batch-encode loop (the store builder and the stream)
    token_store   documents tokenized once, on disk, memory-mapped by every rank
    packing       the one definition of a block; whole-corpus and incremental packers
    rows          the one row builder (pieces -> input_ids, labels) and the metadata rows carry
    block_dataset map-style datasets over a store's blocks
    streaming     the lazy path: read, encode and pack while training, with exact resume
    mixture       token-exact blends of sources, on either path
    pipeline      data arguments -> train and evaluation datasets (the only entry the runner uses)
    collator      rows -> model inputs (labels, position_ids for document-aware attention)

Everything up to the datasets is torch-free, so `prepare_data.py` stays light.
"""
