"""LLM agents: provider presets, the quirk-tolerant client, tool modes, the prompt, recorded
calls and their replay, and the local model server. Importing the package loads none of
LangChain, the OpenAI client or llama.cpp: its modules do, when a chat run needs them."""
