"""Word lists the simulated tenant draws its names from.

Some names deliberately contain others ("Acme" / "Acme Europe") because the
API's name filters match partially and the loader must cope with that.
"""

from __future__ import annotations

import random

# first entries are the largest partners (Zipf rank order)
SPECIAL_PARTNERS = [
    "Acme",
    "Globex",
    "Acme Europe",
    "Globex Training Partners",
    "Initech",
    "Acme Corp",
]
PARTNER_STEMS = [
    "Northwind", "Contoso", "Fabrikam", "Tailspin", "Wingtip", "Litware",
    "Adatum", "Proseware", "Lucerne", "Woodgrove", "Coho", "Alpine",
    "Blue Yonder", "Bluestone", "Cedar", "Summit", "Pinnacle", "Vertex",
    "Nimbus", "Orbit", "Quantum", "Apex", "Horizon", "Keystone", "Meridian",
    "Redwood", "Silverline", "Starlight", "Ironbridge", "Lakeside",
    "Brightpath", "Clearwater", "Evergreen", "Falcon", "Granite", "Harbor",
    "Juniper", "Kestrel", "Lighthouse", "Maple",
]
PARTNER_SUFFIXES = [
    "Training", "Learning", "Academy", "Institute", "Partners", "Education",
    "Skills", "Consulting", "Labs", "Solutions", "Group", "Systems",
    "Europe", "Americas", "APAC", "Learning Services", "Tech Academy",
    "University", "Bootcamp", "Certification Center",
]

# first entries are the largest programs; the two last are the $0 programs
SPECIAL_PROGRAMS = [
    "Cloud Fundamentals",
    "Data Analyst",
    "Cloud Fundamentals Advanced",
    "Security Essentials",
    "Spring Certification Drive",
    "Partner Enablement",
]
ZERO_PRICE_PROGRAMS = ("Spring Certification Drive", "Partner Enablement")
PROGRAM_TOPICS = [
    "Network", "DevOps", "Data Engineering", "Machine Learning", "Project Management",
    "Agile", "Cybersecurity", "Database", "Linux", "Kubernetes", "Python",
    "Business Analysis", "IT Service", "Cloud Architect", "Digital Marketing",
    "Accounting", "Healthcare IT", "Salesforce", "Java", "UX Design",
    "Quality Assurance", "Supply Chain", "Power Platform", "Azure", "AWS",
]
PROGRAM_LEVELS = [
    "Fundamentals", "Associate", "Professional", "Expert", "Practitioner",
    "Specialist", "Essentials", "Foundations",
]

FIRST_NAMES = [
    "Ava", "Ben", "Chloe", "Daniel", "Emma", "Felix", "Grace", "Hugo", "Isla",
    "Jack", "Kara", "Liam", "Maya", "Noah", "Olivia", "Paul", "Quinn", "Rosa",
    "Sam", "Tara", "Umar", "Vera", "Wei", "Ximena", "Yusuf", "Zoe", "Amir",
    "Bianca", "Carlos", "Dana", "Elif", "Farah", "Goran", "Hana", "Ivan",
    "Julia", "Kenji", "Lena", "Mateo", "Nadia", "Omar", "Priya", "Rahul",
    "Sofia", "Tomas", "Ursula", "Victor", "Wanda", "Yara", "Zeynep",
]
LAST_NAMES = [
    "Smith", "Jones", "Garcia", "Muller", "Rossi", "Dubois", "Novak", "Kim",
    "Tanaka", "Silva", "Kowalski", "Nguyen", "Patel", "Brown", "Wilson",
    "Martin", "Lopez", "Schmidt", "Ivanova", "Andersen", "Okafor", "Haddad",
    "Costa", "Fischer", "Moreau", "Jensen", "Yilmaz", "Sato", "Chen", "Singh",
    "Murphy", "OBrien", "Kaur", "Lindqvist", "Horvath", "Popescu", "Mensah",
    "Ali", "Cohen", "Evans", "Reyes", "Hughes", "Weber", "Bauer", "Ricci",
    "Fernandez", "Walsh", "Nakamura", "Park", "Sousa",
]
RECIPIENT_DOMAINS = [
    "example.com", "mail.example.org", "contoso.com", "fabrikam.net",
    "university.edu", "gmail.com", "outlook.com", "yahoo.com", "northwind.io",
    "learners.example.net", "proton.me", "corp.example.co.uk",
]
NOTES = [
    "Q1 employee certification batch", "Q2 employee certification batch",
    "Q3 employee certification batch", "Q4 employee certification batch",
    "Bootcamp cohort", "Customer training bundle", "Renewal order",
    "Scholarship programme", "Trade show giveaway", "Internal upskilling",
    "Reseller stock", "University partnership", "Replacement vouchers", "",
]
USER_STATUSES = ["Active", "Active", "Active", "Active", "Inactive", "Invited"]


def partner_names(count: int, rng: random.Random) -> list[str]:
    """The tenant's partner names, biggest first."""
    generated = [f"{s} {x}" for s in PARTNER_STEMS for x in PARTNER_SUFFIXES]
    rng.shuffle(generated)
    names = SPECIAL_PARTNERS + generated
    if count > len(names):
        raise ValueError(f"at most {len(names)} partners can be named")
    # the small tenant must still hold the nested pairs
    return names[:count]


def program_names(count: int, rng: random.Random) -> list[str]:
    """The tenant's program names, biggest first, the $0 ones among them."""
    generated = [f"{t} {lv}" for t in PROGRAM_TOPICS for lv in PROGRAM_LEVELS]
    rng.shuffle(generated)
    names = SPECIAL_PROGRAMS + generated
    if count > len(names):
        raise ValueError(f"at most {len(names)} programs can be named")
    return names[:count]


def slug(name: str) -> str:
    """A domain-friendly form of a company name."""
    return "".join(ch if ch.isalnum() else "-" for ch in name.lower()).strip("-")


def initials(name: str) -> str:
    """Upper-case initials, padded to three letters from the first word."""
    words = name.split()
    letters = "".join(w[0] for w in words).upper()
    if len(letters) < 3:
        letters = (letters + words[0][1:].upper())[:3]
    return letters
