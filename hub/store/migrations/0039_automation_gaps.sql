-- Automation's remaining rule vocabulary (docs/automation.md): a conversation can be muted (a flag
-- in its state, changed like any other field with conversation.updated), and a message keeps the
-- intent labels the AI part found next to its language and sentiment (0030), so rules read all
-- three from the core's tables.

ALTER TABLE conversations ADD COLUMN muted boolean NOT NULL DEFAULT false;
ALTER TABLE messages ADD COLUMN intents text[];
