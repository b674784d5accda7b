"""The kit's KServe transformer: texts in, tokens to the predictor, decisions out.

It never imports torch: its image carries kserve, tokenizers and numpy only.
"""
