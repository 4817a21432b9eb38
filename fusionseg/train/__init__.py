"""Training: `stream` trains one stream (appearance or motion), `fusion` the fusion layers on the frozen
streams' logits, `command` is `fusionseg train`."""
