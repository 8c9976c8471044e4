-- Quick replies offered with an agent's reply (Messenger and Instagram quick replies, a
-- Telegram keyboard): the choices the customer can tap, sent with the message.
ALTER TABLE messages ADD COLUMN quick_replies text[];
