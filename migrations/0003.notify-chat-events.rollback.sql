DROP TRIGGER chats_notify_deleted ON chats;
DROP FUNCTION notify_chat_deleted();
DROP TRIGGER messages_notify_created ON messages;
DROP FUNCTION notify_message_created();
