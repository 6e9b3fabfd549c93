"""Find the causal language models already on this machine, offline, from their headers only.

Sources: the default model, the Hugging Face hub cache, Ollama's store, LM Studio's,
GPT4All's and llama.cpp's model folders, and folders the user added (remembered in a
small JSON file in the user config folder). Nothing here loads weights: a GGUF file's
header and tensor table are read from its first bytes, a safetensors file's JSON header
by its length prefix, a Hugging Face folder's config.json as text.

scan lists every source; stores says where each application keeps its models, and
folders, hf_cache and ollama read their layouts; gguf_rows and hf_rows turn one file or
folder into a FoundModel (found) from what gguf_header and safetensors_header read;
remembered keeps the added folders; facts gives the memory plan its sizes; table the cells.
"""
