"""Labelled prototypes of the task types a chat request can be, for features that travel.

Each type is a dozen requests written for this module (none taken from an evaluation set).
A request's task-type features are the cosine similarities of its embedding to each type's
mean prototype embedding (:func:`prototype_centroids`), so a router can learn "code and math
need the strong model, chit-chat does not" from any family and apply it to another.

Types: ``code``, ``math``, ``reasoning``, ``writing`` (open-ended writing), ``extraction``
(answer from a given text), ``classification`` (label a given text), ``chit_chat``, plus
``knowledge`` (a factual lookup): eight rows of shape (d,).
"""

from __future__ import annotations

import numpy as np

__all__ = ["TASK_TYPES", "TYPE_NAMES", "prototype_centroids"]

TASK_TYPES: dict[str, tuple[str, ...]] = {
    "code": (
        "Write a Python function that returns the longest palindromic substring of a string.",
        "Why does this JavaScript code print undefined? const f = () => { x: 1 }; console.log(f().x)",
        "Implement a thread-safe LRU cache in Java with get and put in O(1).",
        "Write a SQL query that finds the second highest salary per department.",
        "Fix the bug in my Rust code: the borrow checker says the value was moved in the loop.",
        "Write a bash script that renames every .jpeg file in a folder to .jpg.",
        "How do I write a regex that matches an IPv4 address?",
        "Refactor this class so that it uses dependency injection and add unit tests.",
        "Write a C++ program that reads a graph and prints its strongly connected components.",
        "Create a React component with a search box that filters a list as the user types.",
        "def merge(a, b):\n    # merge two sorted lists\n    ...\nComplete this function.",
        "Explain the time complexity of this recursive Fibonacci implementation and make it faster.",
    ),
    "math": (
        "Solve for x: 3x^2 - 12x + 9 = 0.",
        "What is the integral of x * e^(2x) dx?",
        "A train travels 240 km in 3 hours and then 180 km in 2 hours. What is its average speed?",
        "Prove that the square root of 2 is irrational.",
        "If I roll two dice, what is the probability that the sum is at least 9?",
        "Find the eigenvalues of the matrix [[2, 1], [1, 2]].",
        "A shop sells pens at 3 for $2. How much do 27 pens cost after a 15% discount?",
        "Compute the derivative of sin(x^2) * ln(x).",
        "How many ways can 5 people sit around a round table?",
        "What is the sum of the first 100 odd numbers?",
        "Sarah has twice as many apples as Tom, and together they have 42. How many does Tom have?",
        "Show that the sequence a_n = n / (n + 1) converges and find its limit.",
    ),
    "reasoning": (
        "Three boxes are labelled apples, oranges and mixed, and every label is wrong. Which box do you open?",
        "If all bloops are razzies and some razzies are lazzies, are some bloops necessarily lazzies?",
        "Think step by step: Alice is older than Bob, Bob is older than Carol. Who is the youngest?",
        "A man pushes his car to a hotel and tells the owner he is bankrupt. Why?",
        "What are the trade-offs between microservices and a monolith for a five-person startup?",
        "Analyse the argument: every successful company uses social media, so social media causes success.",
        "Plan a route that visits all four cities once and returns home with the least driving.",
        "Which of these statements must be true if the meeting is moved to Friday? Explain your reasoning.",
        "Compare the causes of the First and the Second World War.",
        "I have a 3-litre and a 5-litre jug. How do I measure exactly 4 litres?",
        "What would happen to the economy if interest rates doubled overnight? Reason it through.",
        "Evaluate the pros and cons of nuclear power as a response to climate change.",
    ),
    "writing": (
        "Write a short story about a lighthouse keeper who finds a message in a bottle.",
        "Write a cover letter for a junior data analyst position.",
        "Compose a poem about autumn in the style of Emily Dickinson.",
        "Draft a friendly email reminding my team about Friday's deadline.",
        "Write a blog post on five tips for working from home.",
        "Create a product description for a stainless steel water bottle.",
        "Write a speech for my sister's wedding, funny but heartfelt.",
        "Give me a catchy slogan for a vegan bakery.",
        "Write the opening scene of a mystery novel set in Venice.",
        "Write a LinkedIn post announcing that I started a new job.",
        "Write song lyrics about missing home.",
        "Create a bedtime story for a five-year-old about a brave little turtle.",
    ),
    "extraction": (
        "From the text below, list every date and what happened on it.\n\nThe company was founded in 1998...",
        "Extract the names of all people mentioned in this paragraph.",
        "Read the passage and answer: where did the author grow up?\n\nI was born in a small village...",
        "Pull out the key figures (revenue, profit, growth) from this earnings summary.",
        "Given this email, what time is the meeting and who must attend?",
        "Turn this recipe into a JSON list of ingredients with quantities.",
        "Summarize the main points of the article below in three bullet points.",
        "According to the text, what are the side effects of the medication?",
        "Find the phone numbers and addresses in the following message.",
        "Based on the context, who won the match and by how many points?",
        "List the action items from these meeting notes.",
        "What does the contract say about the notice period?",
    ),
    "classification": (
        "Is the sentiment of this review positive or negative? 'The food was cold and the staff rude.'",
        "Classify this news headline as sports, politics, business or technology.",
        "Is this email spam or not spam?",
        "Label each tweet as happy, sad or angry.",
        "Which category does this support ticket belong to: billing, technical or account?",
        "Is the following sentence grammatically correct? Answer yes or no.",
        "Tag this product review with the aspects it mentions: price, quality, delivery.",
        "Does this comment contain toxic language? Yes or no.",
        "Is this question asking for a person, a place, a number or a description?",
        "Decide whether the two sentences mean the same thing.",
        "Rate the formality of this message from 1 to 5.",
        "What language is this sentence written in?",
    ),
    "chit_chat": (
        "Hi! How are you today?",
        "Thanks, that was really helpful!",
        "Good morning, what's up?",
        "Tell me a joke.",
        "What's your favourite movie?",
        "I'm bored, let's chat.",
        "Do you like music?",
        "Can you say something nice to cheer me up?",
        "Hello there, who are you?",
        "lol that's funny",
        "What should I have for dinner tonight?",
        "Goodnight, talk tomorrow!",
    ),
    "knowledge": (
        "What is the capital of Australia?",
        "Who wrote Pride and Prejudice?",
        "When did the Berlin Wall fall?",
        "What is photosynthesis?",
        "How tall is Mount Everest?",
        "Who painted the Mona Lisa?",
        "What does DNA stand for?",
        "Which planet is the largest in the solar system?",
        "What is the boiling point of water in Fahrenheit?",
        "Define the word 'ephemeral'.",
        "Translate 'good morning' into Spanish.",
        "What currency is used in Japan?",
    ),
}
"""Task type -> prototype requests."""

TYPE_NAMES = tuple(TASK_TYPES)


def prototype_centroids(embed) -> np.ndarray:
    """Unit-norm mean embedding of each type's prototypes, in :data:`TYPE_NAMES` order.

    Args:
        embed: ``texts -> array (n, d)`` (e.g. :func:`training.embedding_cache.embed_cached`).
    Returns:
        float32 array of shape (len(TYPE_NAMES), d).
    """
    rows = []
    for name in TYPE_NAMES:
        v = np.asarray(embed(list(TASK_TYPES[name])), dtype=np.float32).mean(axis=0)
        rows.append(v / max(float(np.linalg.norm(v)), 1e-12))
    return np.stack(rows).astype(np.float32)
