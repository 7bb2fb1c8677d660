"""The fixed facts of the simulated portal: its period, ids, reject reasons, names, texts and chat states."""

from __future__ import annotations

from datetime import UTC, datetime

MIN_EVENTS = 200
"""The smallest ``events`` that still shows every quirk."""

START = datetime(2026, 3, 2, tzinfo=UTC)
DAYS = 28
DAY = 86_400_000
HOUR = 3_600_000
MINUTE = 60_000
START_MS = int(START.timestamp() * 1000)
END_MS = START_MS + DAYS * DAY - 10 * MINUTE  # no event after this; deliveries stay in the period
ORG_ID = "55778119"
APP_ID = "40526000000002040"
WEBHOOK_ADMIN, WEBHOOK_DATA, WEBHOOK_CRM = "40526000000060011", "40526000000060013", "40526000000060017"
BOT = {"id": "40526000000070001", "name": "Zia", "type": "bot"}
TRANSPORT = ("attempt", "handler", "webhook")
INCIDENTS = (
    "transfer-accepted",
    "transfer-rejected",
    "participants",
    "supervisor",
    "edit",
    "delete",
    "reopen",
    "metrics",
)
CONVERSATION_EVENTS = (
    "conversation.created",
    "conversation.attender.updated",
    "conversation.missed",
    "conversation.completed",
)
WINDOW = 3 * HOUR  # an owner stays in the department this long after picking a chat up

# fmt: off
FIRST = ["Patricia", "Arjun", "Meera", "Lucas", "Sofia", "Kenji", "Amara", "Noah", "Leila", "Mateo",
         "Hannah", "Ravi", "Chloé", "Omar", "Ingrid", "Diego", "Yuki", "Fatima", "Tomás", "Grace",
         "Nikolai", "Priya", "Zanele", "Ethan", "Lina", "Björn", "Aisha", "Marco", "Nora", "Sven"]
LAST = ["Smith", "Iyer", "Nair", "Martin", "Rossi", "Tanaka", "Okafor", "Brown", "Haddad", "García",
        "Müller", "Kumar", "Dubois", "Farouk", "Larsen", "Núñez", "Sato", "Khan", "Silva", "Lee",
        "Ivanov", "Patel", "Dlamini", "Wilson", "Chen", "Berg", "Bello", "Conti", "Walsh", "Lund"]
DEPARTMENTS = [("Sales", "Questions before buying"), ("Support", "Help with orders and products"),
               ("Billing", "Invoices, refunds and payments"), ("Partners", "Resellers and affiliates"),
               ("Onboarding", "Getting new business customers started")]
QUESTIONS = ["Hi, I need some assistance in buying a dining set.", "Where is my order? It was due Tuesday.",
             "Do you ship to Norway?", "Can I change the delivery address of order 10482?",
             "The sofa arrived with a scratch on the left arm.", "Is the oak table available in 180 cm?",
             "I was charged twice for the same order.", "How do I become a reseller?",
             "¿Tienen la silla Nórdica en gris?", "Can I get an invoice with my company VAT number?",
             "What is the warranty on the recliner?", "I'd like to return a lamp 💡 that doesn't fit."]
VISITOR_TEXT = ["Thanks!", "Order number is 10482.", "Yes, that's right.", "Could you check again please?",
                "It's the walnut one.", "Perfect, thank you so much 🙏", "How long will it take?",
                "My email is on the order.", "OK", "Great, that works for me.", "Is there a discount?",
                "Merci beaucoup !", "Can you send me the link?", "No, the other address."]
OPERATOR_TEXT = ["Hi, I'm happy to help. Let me check that for you.", "Could you share your order number?",
                 "Thanks, one moment please.", "I've updated the address on your order.",
                 "The refund has been issued; it takes 3 to 5 business days.", "Yes, we ship there in about a week.",
                 "I've sent the details to your email.", "Is there anything else I can help with?",
                 "I'm sorry about that. We'll send a replacement part.", "That model is in stock in both sizes."]
FEEDBACK = ["Good support", "Awesome support from the reps!", "Quick and friendly.", "Took too long.",
            "Solved my problem, thanks.", "The agent didn't understand my question.", "Très bien 👍",
            "Helpful but I had to wait a while."]
BOT_MESSAGES = [
    ({}, [{"type": "text", "text": "Hi there! I'm Zia. An operator will be with you shortly."}]),
    ({"type": "suggestions", "suggestions": ["Track my order", "Talk to sales", "Something else"]},
     [{"type": "text", "text": "What can I help you with?"}]),
    ({"type": "links", "links": [{"text": "Shipping FAQ", "url": "https://www.zylker.com/help/shipping"}]},
     [{"type": "text", "text": "This article may answer your question."}]),
    ({"input_card": {"type": "email", "placeholder": "you@example.com"}},
     [{"type": "text", "text": "Leave your email and we'll get back to you."}]),
]
WAITING = {"state_key": "waiting", "status_code": 0, "state": 1, "status_key": "open"}
CONNECTED = {"state_key": "connected", "status_code": 0, "state": 2, "status_key": "open"}
MISSED = {"state_key": "missed", "status_code": 1, "label": "Missed", "state": 3, "id": "5", "status_key": "closed"}
CLOSED = {"state_key": "end", "status_code": 2, "label": "Attended Online", "state": 4, "id": "22",
          "status_key": "closed"}
BOT_CLOSED = dict(CLOSED, label="Ended by bot", id="23")
# fmt: on
