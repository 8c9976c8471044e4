-- Template messages (WhatsApp Cloud API): the provider-held template an agent's reply sends,
-- {"name", "language", "body_parameters": [...]}. NULL for every other message; such a reply has
-- content_type 'template' and its preview as content (channels/_base/adapter.py ``Template``).
ALTER TABLE messages ADD COLUMN template jsonb;
