# Run: python examples/cooking-assistant/make_dataset.py
"""Build the cooking-assistant demo dataset (train.jsonl, test.jsonl).

Stdlib only and deterministic: a hand-written knowledge table (one entry per
topic) is combined with hand-written and templated question phrasings, and
every answer is rendered in the Sous house style:

    Short answer: <key fact>.
    Steps:
    1. <step>
    2. <step>
    3. <step>
    Chef's note: <tip or common mistake>.

Each topic yields two question types: "method" (how do I / how long / what
temperature) and "mistake" (what goes wrong / why did it fail). Test examples
are whole (topic, question type) pairs held out from train.
"""

import hashlib
import json
import random
import re
from pathlib import Path

SEED = 20240611
SYSTEM = "You are Sous, a cooking assistant. Answer in the house style."
DEMO_PROMPT = "How long do I boil an egg for a runny yolk?"
N_TEST_PAIRS = 40          # (topic, qtype) pairs held out for test, 2 phrasings each
TRAIN_METHOD_PHRASINGS = 3
MIN_WORDS, MAX_WORDS = 35, 80
HERE = Path(__file__).resolve().parent

METHOD_TEMPLATES = [
    "How do I {do}?",
    "What's the best way to {do}?",
    "Can you explain how to {do}?",
    "What's the right way to {do}?",
    "Quick question: how should I {do}?",
    "I'm new to cooking. How do I {do}?",
    "Any tips for {doing}?",
    "Give me the short version: how do I {do}?",
]

MISTAKE_TEMPLATES = [
    "What's the most common mistake when {doing}?",
    "What do people usually get wrong when {doing}?",
    "What should I avoid when {doing}?",
    "Where do beginners go wrong with {doing}?",
    "Any pitfalls to watch out for when {doing}?",
]

TOPICS = []


def T(id, cat, do, doing, key, steps, note, mistake, tip, qm=(), qx=()):
    TOPICS.append(dict(id=id, cat=cat, do=do, doing=doing, key=key,
                       steps=list(steps), note=note, mistake=mistake, tip=tip,
                       qm=list(qm), qx=list(qx)))


# --------------------------------------------------------------------------
# Knowledge table
# --------------------------------------------------------------------------

# Eggs
T("soft_boiled_egg", "eggs", "boil an egg so the yolk stays runny", "soft-boiling eggs",
  "Cook fridge-cold large eggs in gently boiling water for 6 minutes.",
  ["Bring a pot of water to a gentle boil.",
   "Lower in the eggs with a spoon and time 6 minutes.",
   "Chill in ice water for 1 minute, then peel."],
  "Add 30 seconds for extra-large eggs; the yolk keeps cooking if you wait.",
  "Starting the eggs in cold water is the usual culprit, because the timing becomes guesswork.",
  "Keep the boil gentle so the shells don't crack.",
  qm=[DEMO_PROMPT, "How many minutes for a soft-boiled egg with a dippy yolk?"],
  qx=["Why do my soft-boiled eggs always come out hard in the middle?"])

T("hard_boiled_egg", "eggs", "hard-boil eggs", "hard-boiling eggs",
  "Simmer large eggs for 11 minutes, then chill them in ice water.",
  ["Lower the eggs into gently boiling water with a spoon.",
   "Simmer for 11 minutes, no longer.",
   "Chill in ice water for 5 minutes before peeling."],
  "A grey-green ring around the yolk means they cooked too long.",
  "Overcooking is the big one: past 12 minutes the yolk turns chalky with a green ring.",
  "Peel under running water, starting from the wide end.",
  qm=["How long should I boil eggs for egg salad?", "How many minutes for a hard-boiled egg?"],
  qx=["Why do my hard-boiled eggs have a green ring around the yolk?"])

T("poached_egg", "eggs", "poach an egg", "poaching eggs",
  "Poach very fresh eggs in barely simmering water for 3 minutes.",
  ["Heat deep water until small bubbles rise, and add a splash of vinegar.",
   "Crack the egg into a sieve to drain the thin white.",
   "Slide it in, cook 3 minutes, and lift out with a slotted spoon."],
  "A hard boil tears the white into ragged wisps.",
  "Water boiling too hard, or old eggs with runny whites, causes stringy wisps.",
  "Drain poached eggs on a paper towel so the toast doesn't go soggy.",
  qm=["How do you poach an egg without it falling apart?", "How long does a poached egg take?"],
  qx=["Why do my poached eggs turn into a stringy mess?"])

T("scrambled_eggs", "eggs", "make soft scrambled eggs", "scrambling eggs",
  "Cook beaten eggs over low heat for 3-5 minutes, stirring constantly.",
  ["Beat the eggs with a pinch of salt until no streaks remain.",
   "Melt butter in a nonstick pan over low heat.",
   "Stir slowly and take them off while still slightly wet."],
  "Eggs keep cooking on the plate, so stop a little early.",
  "High heat is the usual problem; it squeezes out water and makes the eggs rubbery.",
  "A spoonful of cold butter stirred in at the end keeps them creamy.",
  qm=["How do I make creamy scrambled eggs?"],
  qx=["Why are my scrambled eggs rubbery and watery?"])

T("omelette", "eggs", "make a French omelette", "making an omelette",
  "Cook 3 beaten eggs in a 20 cm (8-inch) nonstick pan over medium heat for about 2 minutes.",
  ["Beat the eggs well with a pinch of salt.",
   "Pour into foaming butter and stir quickly with a spatula.",
   "When barely set, add filling, fold, and roll onto a plate."],
  "Warm fillings first; cold fillings stay cold in a quick omelette.",
  "A pan that's too big spreads the eggs thin and dries them out.",
  "Shake the pan while stirring so small, even curds form.",
  qm=["What size pan and how long for a 3-egg omelette?"],
  qx=["Why is my omelette always dry and thin?"])

T("fried_egg", "eggs", "fry an egg sunny-side up", "frying eggs",
  "Fry the egg in hot fat over medium heat for 2-3 minutes until the white sets.",
  ["Heat a tablespoon of oil or butter over medium heat.",
   "Crack the egg into a cup, then slide it into the pan.",
   "Cover for the last minute to set the top of the white."],
  "If the white bubbles violently, lower the heat a notch.",
  "Not covering or basting leaves the top of the white raw while the bottom overcooks.",
  "Start with a hot pan so the white sets fast and doesn't spread.",
  qm=["How long does a fried egg take?"],
  qx=["Why do my fried eggs have runny whites on top?"])

# Pasta, rice, grains, beans
T("dry_pasta", "pasta", "cook dried pasta", "cooking pasta",
  "Use about 4 liters (4 quarts) of water and 1 tablespoon of salt per 450 g (1 lb) of pasta.",
  ["Bring the salted water to a rolling boil.",
   "Add the pasta and stir for the first minute.",
   "Taste 2 minutes before the package time and drain when al dente."],
  "Save a cup of pasta water before draining to loosen the sauce.",
  "Undersalting the water is the classic mistake, and the pasta then tastes flat under any sauce.",
  "Skip oil in the water; it only makes the sauce slide off.",
  qm=["How much water and salt do I need for a pound of spaghetti?"],
  qx=["Why does my pasta taste bland even with a good sauce?"])

T("finishing_pasta", "pasta", "finish pasta in the sauce", "saucing pasta",
  "Move the pasta into the sauce 1 minute before al dente and toss it over heat for 1-2 minutes.",
  ["Reserve 240 ml (1 cup) of starchy pasta water.",
   "Add the underdone pasta to the simmering sauce.",
   "Toss with splashes of pasta water until glossy."],
  "Never rinse pasta for hot dishes; the surface starch helps sauce cling.",
  "Spooning sauce over plain drained pasta leaves it watery and slippery instead of coated.",
  "Add grated cheese off the heat so it melts smoothly instead of clumping.",
  qm=["How do restaurants get the sauce to stick to pasta?", "What is pasta water used for?"],
  qx=["Why does my pasta sauce slide off the noodles and pool on the plate?"])

T("fresh_pasta", "pasta", "make fresh egg pasta dough", "making fresh pasta",
  "Use 100 g (3/4 cup) of flour per large egg, knead 8-10 minutes, and rest the dough 30 minutes.",
  ["Mound the flour, crack the eggs into a well, and mix with a fork.",
   "Knead until smooth and springy, about 8-10 minutes.",
   "Wrap and rest 30 minutes before rolling thin."],
  "Fresh pasta cooks in 2-3 minutes, so have the sauce ready.",
  "Skipping the rest makes the dough fight back and shrink when you roll it.",
  "If the dough feels sticky, dust in flour a little at a time.",
  qm=["What's the ratio of flour to eggs for homemade pasta?"],
  qx=["Why does my pasta dough keep shrinking back when I roll it?"])

T("carbonara", "pasta", "make carbonara without scrambling the eggs", "making carbonara",
  "Mix the eggs and cheese into hot pasta off the heat, loosening with pasta water.",
  ["Whisk 1 whole egg plus 1 yolk per person with grated pecorino.",
   "Toss the drained pasta with crisp guanciale, then take the pan off the heat.",
   "Stir in the egg mix with splashes of pasta water until silky."],
  "If it's too thin, stir over very low heat for seconds, not minutes.",
  "Adding the eggs while the pan is still on the burner turns the sauce into scrambled egg.",
  "Warm the serving bowls so the sauce stays glossy.",
  qm=["How do I make carbonara creamy without cream?"],
  qx=["My carbonara turned into scrambled eggs. What happened?"])

T("white_rice", "rice", "cook long-grain white rice on the stove", "cooking white rice",
  "Use 1 cup of rice to 1.5 cups of water, simmer covered for 15 minutes, then rest 10 minutes.",
  ["Rinse the rice until the water runs mostly clear.",
   "Bring the rice, water, and a pinch of salt to a boil.",
   "Cover, cook on the lowest heat 15 minutes, then rest off the heat 10 minutes."],
  "Don't lift the lid while it cooks; the steam does the work.",
  "Lifting the lid and stirring lets steam escape and makes the rice gummy and uneven.",
  "Fluff with a fork after resting to separate the grains.",
  qm=["What's the water to rice ratio for basmati?", "How long do I simmer white rice?"],
  qx=["Why is my rice always mushy and sticky?"])

T("brown_rice", "rice", "cook brown rice", "cooking brown rice",
  "Simmer 1 cup of brown rice in 2 cups of water, covered, for 40-45 minutes.",
  ["Rinse the rice and put it in a pot with the water and salt.",
   "Bring to a boil, cover, and simmer on low for 40-45 minutes.",
   "Rest off the heat, still covered, for 10 minutes."],
  "Brown rice needs far longer than white, so don't swap the timings.",
  "Using white-rice timing leaves brown rice chalky and hard in the center.",
  "You can also boil it like pasta for 30 minutes, drain, and steam covered for 10 minutes.",
  qm=["How long does brown rice take to cook?"],
  qx=["Why is my brown rice still crunchy?"])

T("risotto", "rice", "make risotto", "making risotto",
  "Add hot stock a ladle at a time and stir for 18-20 minutes, using about 4 cups of stock per cup of rice.",
  ["Toast arborio rice in butter with onion for 2 minutes.",
   "Add wine, then hot stock a ladle at a time, stirring often.",
   "Finish off the heat with butter and parmesan, and rest 2 minutes."],
  "Keep the stock hot; cold stock stalls the cooking.",
  "Cooking it too long makes risotto stiff and gluey when it should flow gently on the plate.",
  "Taste at 18 minutes: the grain should be tender with a slight bite.",
  qm=["How much stock do I need for risotto?"],
  qx=["Why is my risotto gluey instead of creamy?"])

T("leftover_rice", "food safety", "store leftover cooked rice safely", "storing cooked rice",
  "Cool cooked rice and refrigerate it within 1 hour, then eat it within 3-4 days.",
  ["Spread the rice on a tray so it cools quickly.",
   "Refrigerate in a shallow covered container at 4°C (40°F) or below.",
   "Reheat once, until steaming hot at 74°C (165°F) throughout."],
  "Warm rice can grow Bacillus cereus, whose toxin survives reheating.",
  "Leaving rice out overnight is the risky mistake, because spores survive cooking and multiply as it cools.",
  "Day-old chilled rice makes the best fried rice.",
  qm=["How long can cooked rice stay in the fridge?"],
  qx=["Can I leave cooked rice out overnight and eat it tomorrow?"])

T("quinoa", "grains", "cook quinoa", "cooking quinoa",
  "Simmer 1 cup of rinsed quinoa in 2 cups of water, covered, for 15 minutes, then rest 5 minutes.",
  ["Rinse the quinoa in a fine sieve for 30 seconds.",
   "Boil with the water and a pinch of salt, then cover and simmer 15 minutes.",
   "Rest covered for 5 minutes and fluff with a fork."],
  "Skipping the rinse leaves a bitter, soapy coating.",
  "Not rinsing is the usual mistake, because it leaves bitter saponins on the seeds.",
  "Toast rinsed quinoa in a dry pan for 2 minutes for a nuttier flavor.",
  qm=["What's the water ratio for cooking quinoa?"],
  qx=["Why does my quinoa taste bitter?"])

T("fried_rice", "rice", "make fried rice", "making fried rice",
  "Use cold day-old rice and stir-fry it in a very hot pan for 3-4 minutes.",
  ["Heat oil in a wok over high heat until shimmering.",
   "Scramble eggs, push them aside, then add the rice and break up clumps.",
   "Add vegetables and soy sauce, and toss 3-4 minutes until hot."],
  "Cook in batches on a weak burner so the rice fries instead of steaming.",
  "Using freshly cooked rice is the mistake; it's too moist and turns mushy in the wok.",
  "No leftovers? Spread fresh rice on a tray and chill it for 1 hour.",
  qm=["How do I make fried rice like takeout?"],
  qx=["Why is my fried rice soggy?"])

T("dried_beans", "beans", "cook dried beans", "cooking dried beans",
  "Soak beans for 8-12 hours, then simmer them for 1-2 hours until creamy inside.",
  ["Soak in plenty of cold water, then drain and rinse.",
   "Cover with fresh water by 5 cm (2 inches) and bring to a boil.",
   "Simmer gently for 1-2 hours, salting once they soften."],
  "Boil red kidney beans hard for 10 minutes first to destroy a natural toxin.",
  "Cooking raw kidney beans in a slow cooker is the dangerous mistake, because it never gets hot enough to destroy the toxin.",
  "Old beans take much longer, so buy from a shop with good turnover.",
  qm=["Do I need to soak dried beans, and how long do they cook?"],
  qx=["Can I put dried kidney beans straight into the slow cooker?"])

# Vegetables
T("roast_potatoes", "vegetables", "make crispy roast potatoes", "roasting potatoes",
  "Parboil for 8-10 minutes, then roast in hot fat at 220°C (425°F) for 40-50 minutes.",
  ["Parboil chunks in salted water, drain, and shake to rough up the edges.",
   "Tip them into a tray of fat preheated in the oven.",
   "Roast for 40-50 minutes, turning once halfway."],
  "Let them steam dry for 5 minutes after draining, or they won't crisp.",
  "Crowding the tray traps steam, so the potatoes soften instead of crisping.",
  "Floury potatoes like Russet or Maris Piper give the fluffiest centers.",
  qm=["How do I get roast potatoes really crispy?", "What temperature do I roast potatoes at?"],
  qx=["Why are my roast potatoes soggy?"])

T("roast_broccoli", "vegetables", "roast broccoli", "roasting broccoli",
  "Roast broccoli florets at 220°C (425°F) for 18-22 minutes.",
  ["Cut into even florets and dry them well.",
   "Toss with oil and salt and spread in one layer.",
   "Roast until the edges are deeply browned, turning once."],
  "A squeeze of lemon after roasting brightens it.",
  "Wet florets or a low oven steam the broccoli, so it turns drab and soft.",
  "Peel and slice the stems and roast them too; they turn sweet.",
  qm=["How long do I roast broccoli at 425?"],
  qx=["Why does my roasted broccoli come out soggy instead of charred?"])

T("root_vegetables", "vegetables", "roast carrots and other root vegetables", "roasting root vegetables",
  "Roast 2 cm (3/4-inch) chunks at 200°C (400°F) for 30-40 minutes.",
  ["Cut the vegetables into evenly sized pieces.",
   "Toss with oil, salt, and pepper on a large tray.",
   "Roast, stirring once, until tender and caramelized."],
  "Add honey or maple syrup only for the last 10 minutes so it doesn't burn.",
  "Mixing big and small pieces means some burn while others stay raw.",
  "Preheat the tray for a faster sear on the cut sides.",
  qm=["What temperature for roasting carrots and parsnips?"],
  qx=["Why do some of my roast vegetables burn while others are still hard?"])

T("brussels_sprouts", "vegetables", "roast Brussels sprouts", "roasting Brussels sprouts",
  "Roast halved sprouts cut side down at 220°C (425°F) for 20-25 minutes.",
  ["Trim the stem ends and halve the sprouts.",
   "Toss with oil and salt and lay them cut side down.",
   "Roast until the cut faces are deep brown and tender."],
  "Small, tight sprouts are sweeter than large, loose ones.",
  "Boiling or overcooking releases sulfur compounds, which is where the bitter smell comes from.",
  "Finish with balsamic vinegar or a squeeze of lemon.",
  qm=["How long should I roast Brussels sprouts?"],
  qx=["Why do my Brussels sprouts smell bitter and sulfurous?"])

T("baked_potato", "vegetables", "bake a potato", "baking potatoes",
  "Bake a large russet at 200°C (400°F) for 50-60 minutes, until a skewer slides in easily.",
  ["Scrub, dry, and prick the potato a few times with a fork.",
   "Rub with oil and coarse salt.",
   "Bake directly on the oven rack until tender inside."],
  "Skip the foil; it steams the skin instead of crisping it.",
  "Wrapping the potato in foil traps steam and gives soft, soggy skin.",
  "Cut it open right away so steam escapes and the inside stays fluffy.",
  qm=["How long does a jacket potato take in the oven?"],
  qx=["Why is the skin on my baked potato soft?"])

T("mashed_potatoes", "vegetables", "make mashed potatoes", "making mashed potatoes",
  "Simmer peeled starchy potatoes in salted water for 15-20 minutes, then mash with warm butter and milk.",
  ["Start evenly cut potatoes in cold salted water.",
   "Simmer until a knife slides in, then drain and steam dry.",
   "Mash or rice, then fold in warm butter and milk."],
  "Warm the milk so the mash stays hot and smooth.",
  "A blender or food processor overworks the starch and turns mash gluey.",
  "Yukon Gold potatoes give a naturally buttery, creamy mash.",
  qm=["How do I make smooth, fluffy mashed potatoes?"],
  qx=["Why did my mashed potatoes turn gluey?"])

T("green_beans", "vegetables", "blanch green beans", "blanching vegetables",
  "Boil green beans in well-salted water for 2-3 minutes, then plunge them into ice water.",
  ["Bring a large pot of salted water to a rolling boil.",
   "Cook the beans until bright green and crisp-tender.",
   "Chill in ice water, then drain and dry."],
  "Use plenty of water so the boil returns quickly.",
  "Skipping the ice bath lets the beans keep cooking and turn olive-grey.",
  "Blanched beans keep 3 days in the fridge, ready for a quick sauté.",
  qm=["How long do I blanch green beans?"],
  qx=["Why do my green beans turn dull grey?"])

T("mushrooms", "vegetables", "sauté mushrooms", "sautéing mushrooms",
  "Cook mushrooms in a hot, uncrowded pan for 8-10 minutes and salt them at the end.",
  ["Heat oil in a wide pan over medium-high heat.",
   "Add the mushrooms in one layer and leave them 3 minutes to brown.",
   "Stir until golden, then add butter, garlic, and salt."],
  "Wipe dirty mushrooms clean rather than soaking them.",
  "Crowding the pan and salting early draw out water, so the mushrooms stew and turn grey.",
  "A splash of soy sauce at the end deepens the savory flavor.",
  qm=["How do I get mushrooms golden brown?"],
  qx=["Why do my mushrooms go slimy and watery in the pan?"])

T("caramelized_onions", "vegetables", "caramelize onions", "caramelizing onions",
  "Cook sliced onions over medium-low heat for 40-60 minutes, stirring occasionally.",
  ["Slice the onions evenly and add them to a wide pan with butter and oil.",
   "Add a pinch of salt and cook slowly, stirring every few minutes.",
   "Deglaze stuck brown bits with a splash of water as needed."],
  "Recipes that promise 10 minutes only give you softened onions.",
  "Turning up the heat to hurry them burns the outside before the sugars develop.",
  "Make a big batch; they freeze well for 3 months.",
  qm=["How long does it really take to caramelize onions?"],
  qx=["Why do my onions burn before they caramelize?"])

T("butternut_squash", "vegetables", "roast butternut squash", "roasting squash",
  "Roast 2.5 cm (1-inch) cubes at 200°C (400°F) for 25-35 minutes.",
  ["Slice off a flat base, peel, halve, and scoop out the seeds.",
   "Cut into even cubes and toss with oil and salt.",
   "Roast in one layer, turning once, until browned and tender."],
  "Microwave the whole squash for 2 minutes to make peeling easier.",
  "Cutting a round squash without a flat base lets it roll and the knife slip.",
  "Roast the seeds at 160°C (325°F) for 15-20 minutes for a snack.",
  qm=["How long to roast butternut squash cubes?"],
  qx=["Why does my knife keep slipping when I cut butternut squash?"])

T("corn", "vegetables", "cook corn on the cob", "boiling corn",
  "Boil husked corn in a large pot of water for 4-6 minutes.",
  ["Husk the corn and pull off the silk.",
   "Lower into boiling water and cook until bright and tender.",
   "Drain and brush with butter and salt."],
  "Cook corn the day you buy it; its sugars turn to starch quickly.",
  "Boiling for 15-20 minutes, as old recipes suggest, makes the kernels tough and starchy.",
  "Grilling in the husk for 15-20 minutes is a good alternative.",
  qm=["How long do I boil corn on the cob?"],
  qx=["Why is my corn on the cob chewy?"])

T("stir_fry", "vegetables", "stir-fry vegetables", "stir-frying",
  "Stir-fry over high heat in small batches, 2-4 minutes per batch.",
  ["Cut everything small and even before turning on the heat.",
   "Heat the wok until smoking, then add oil and the hard vegetables.",
   "Add soft vegetables and sauce last and toss 1-2 minutes."],
  "Mix the sauce in advance; stir-frying is too fast to measure mid-cook.",
  "Overloading the wok drops the temperature, so the vegetables steam and go limp.",
  "Dry washed vegetables well so the oil doesn't spit.",
  qm=["How do I stir-fry vegetables so they stay crisp?"],
  qx=["Why does my stir-fry end up soggy and swimming in liquid?"])

# Meat, poultry, fish
T("roast_chicken", "meat", "roast a whole chicken", "roasting a whole chicken",
  "Roast a 1.6 kg (3.5 lb) chicken at 220°C (425°F) for about 1 hour, until the thigh reads 74°C (165°F).",
  ["Pat the skin dry and season well, ideally the night before.",
   "Roast breast side up until the juices run clear.",
   "Check the thickest part of the thigh, then rest 15 minutes."],
  "Test the thigh, not the breast; it's the last part to cook through.",
  "Roasting a wet bird is the common mistake, and it gives pale, flabby skin.",
  "Leave it uncovered in the fridge overnight for the crispiest skin.",
  qm=["How long do I roast a 3.5 pound chicken?", "What temperature should roast chicken reach inside?"],
  qx=["Why is the skin on my roast chicken pale and rubbery?"])

T("chicken_breast", "meat", "pan-sear a chicken breast", "cooking chicken breasts",
  "Sear over medium-high heat for 5-7 minutes per side, until the center reads 74°C (165°F).",
  ["Pound to an even 2 cm (3/4-inch) thickness and season.",
   "Sear in hot oil without moving it until golden, then flip.",
   "Check the temperature, then rest 5 minutes before slicing."],
  "Use a thermometer; cutting in to check lets the juices escape.",
  "Cooking uneven breasts means the thin end dries out before the thick end is safe.",
  "A 30-minute salt dry brine keeps the meat juicier.",
  qm=["What internal temperature is chicken safe at?", "How long do I pan-fry a chicken breast?"],
  qx=["Why is my chicken breast always dry?"])

T("chicken_thighs", "meat", "roast bone-in chicken thighs", "roasting chicken thighs",
  "Roast skin-on thighs at 200°C (400°F) for 35-45 minutes, to at least 74°C (165°F).",
  ["Pat dry, season, and lay skin side up on a tray.",
   "Roast until the skin is crisp and deep golden.",
   "Check the meat near the bone, then rest 5 minutes."],
  "Thighs are more tender at 80-85°C (175-185°F), when the connective tissue softens.",
  "Pulling thighs at exactly 74°C (165°F) is safe but leaves them chewy near the bone.",
  "Start them skin side down in an oven-safe pan to render more fat.",
  qm=["How long do chicken thighs take in the oven?"],
  qx=["Why are my chicken thighs rubbery even though they're cooked?"])

T("turkey", "meat", "roast a whole turkey", "roasting turkey",
  "Roast an unstuffed turkey at 165°C (325°F) for 13-15 minutes per 450 g (1 lb), to 74°C (165°F).",
  ["Thaw it fully in the fridge and pat the skin dry.",
   "Roast, checking the thickest thigh and breast near the end.",
   "Rest 30 minutes, loosely covered with foil, before carving."],
  "Cook stuffing separately; inside the bird it must also reach 74°C (165°F).",
  "The breast cooks faster than the legs, so it dries out while you wait for the thighs.",
  "Spatchcocking the bird evens out the cooking and cuts the roasting time.",
  qm=["How long per pound do I roast a turkey?"],
  qx=["Why is my turkey breast dry but the thighs undercooked?"])

T("burgers", "meat", "grill beef burgers", "making burgers",
  "Cook beef patties 4-5 minutes per side, until the center reaches 71°C (160°F).",
  ["Shape 2 cm (3/4-inch) patties with a thumb dimple in the middle.",
   "Salt just before cooking and grill over medium-high heat.",
   "Flip once and check with a thermometer."],
  "Ground meat needs 71°C (160°F) because surface bacteria get mixed all the way through.",
  "Pressing the patties with a spatula squeezes out the juice and fat.",
  "Keep patties cold until they hit the grill so the fat stays put.",
  qm=["What temperature should a hamburger be cooked to?", "How long do I grill burgers on each side?"],
  qx=["Why are my homemade burgers dry?"])

T("steak", "meat", "pan-sear a steak", "cooking steak",
  "For medium-rare, pull a 2.5 cm (1-inch) steak at 52-54°C (125-130°F); it rises to about 57°C (135°F) as it rests.",
  ["Pat dry, salt well, and heat a heavy pan until smoking.",
   "Sear 3-4 minutes per side, flipping once or twice.",
   "Rest 5 minutes, then slice against the grain."],
  "Official guidance for whole cuts is 63°C (145°F) with a 3-minute rest.",
  "A pan that isn't hot enough gives grey meat with no crust.",
  "Add butter, garlic, and thyme in the last minute and baste.",
  qm=["What temperature is medium-rare steak?", "How long do I cook a steak in a pan?"],
  qx=["Why doesn't my steak get a nice brown crust?"])

T("pork_chops", "meat", "cook pork chops", "cooking pork chops",
  "Cook pork chops to 63°C (145°F), then rest them for 3 minutes.",
  ["Season 2.5 cm (1-inch) chops and sear over medium-high heat.",
   "Cook 4-5 minutes per side, turning once.",
   "Check the center, then rest 3 minutes."],
  "Slightly pink pork at 63°C (145°F) is safe and much juicier.",
  "Cooking pork until it's white all the way through leaves it dry and tough.",
  "A 1-hour brine makes lean chops far more forgiving.",
  qm=["What temperature should pork chops be cooked to?"],
  qx=["Why are my pork chops always tough?"])

T("pork_tenderloin", "meat", "roast a pork tenderloin", "roasting pork tenderloin",
  "Sear it, then roast at 220°C (425°F) for 12-18 minutes, until it reaches 63°C (145°F).",
  ["Trim off the silver skin and season the tenderloin.",
   "Brown it on all sides in an oven-safe pan.",
   "Roast to temperature, then rest 5 minutes before slicing."],
  "Tenderloin is lean and small, so check early and often.",
  "Leaving the silvery membrane on makes the meat curl and chew tough.",
  "Slice into 2 cm (3/4-inch) medallions for even servings.",
  qm=["How long does pork tenderloin take in the oven?"],
  qx=["Why does my pork tenderloin curl up and taste chewy?"])

T("pulled_pork", "meat", "make pulled pork", "slow-roasting pork shoulder",
  "Cook pork shoulder at 150°C (300°F) for 5-7 hours, until it reaches 90-95°C (195-203°F).",
  ["Rub the shoulder with salt, sugar, and spices.",
   "Roast covered, low and slow, until a fork twists easily.",
   "Rest 30 minutes, then shred and toss with the juices."],
  "It's safe much earlier; the high temperature is for melting collagen.",
  "Stopping at 63°C (145°F) leaves shoulder safe but far too tough to shred.",
  "Expect a stall around 65-75°C (150-170°F); wrapping in foil pushes through it.",
  qm=["What temperature does pork shoulder need to reach to pull apart?"],
  qx=["Why won't my pork shoulder shred?"])

T("salmon", "fish", "bake a salmon fillet", "cooking salmon",
  "Bake a 2.5 cm (1-inch) fillet at 200°C (400°F) for 12-15 minutes, to 63°C (145°F).",
  ["Pat the fillet dry and season with salt and oil.",
   "Bake skin side down on a lined tray.",
   "Check the thickest part; it should flake easily."],
  "Carryover heat adds a few degrees, so take it out promptly.",
  "Overcooking squeezes out white albumin and leaves salmon dry and chalky.",
  "A 10-minute salt brine reduces the white albumin on the surface.",
  qm=["How long do I bake salmon at 400?", "What temperature should salmon be cooked to?"],
  qx=["What's the white stuff that comes out of my salmon?"])

T("shrimp", "fish", "cook shrimp", "cooking shrimp",
  "Sauté shrimp over medium-high heat for 2-3 minutes, until pink and opaque.",
  ["Thaw, peel, devein, and pat the shrimp dry.",
   "Cook in one layer in a hot pan, flipping after 1 minute.",
   "Remove as soon as they curl into a loose C shape."],
  "A tight O shape means overcooked and rubbery.",
  "Cooking shrimp past opaque makes them tough and rubbery within a minute.",
  "Thaw frozen shrimp in a bowl of cold water for 10-15 minutes.",
  qm=["How long does shrimp take to cook?", "How do I know when shrimp is done?"],
  qx=["Why is my shrimp rubbery?"])

T("white_fish", "fish", "pan-fry a white fish fillet", "pan-frying fish",
  "Fry fish skin side down over medium-high heat for 3-4 minutes, then 1-2 minutes on the other side.",
  ["Pat the fillet completely dry and season just before cooking.",
   "Lay it skin side down in hot oil and press for 10 seconds.",
   "Flip once it releases easily and cook until it flakes, 63°C (145°F)."],
  "If the fish sticks, wait; it releases once the skin crisps.",
  "Moving the fish too early tears the skin and leaves it stuck to the pan.",
  "Score the skin lightly to stop the fillet curling.",
  qm=["How do I get crispy skin on a fish fillet?"],
  qx=["Why does my fish always stick to the pan?"])

T("resting_meat", "meat", "rest meat after cooking", "resting meat",
  "Rest steaks and chops for 5-10 minutes and large roasts for 15-30 minutes before carving.",
  ["Move the meat to a board or warm plate.",
   "Tent loosely with foil; wrapping it tightly softens the crust.",
   "Carve after resting and pour the juices back over."],
  "Pull meat a few degrees early because it keeps cooking as it rests.",
  "Slicing immediately makes the juices run onto the board instead of staying in the meat.",
  "Use the resting time to make a quick pan sauce.",
  qm=["How long should I let meat rest?", "Why do you rest meat after cooking?"],
  qx=["Why does my steak leak juice all over the board?"])

T("poultry_burgers", "meat", "cook turkey or chicken burgers", "cooking ground poultry",
  "Cook ground turkey or chicken to 74°C (165°F), about 5-6 minutes per side.",
  ["Mix in grated onion or a little oil to keep the meat moist.",
   "Shape patties and cook over medium heat, flipping once.",
   "Check the center with a thermometer before serving."],
  "Ground poultry needs 74°C (165°F), higher than ground beef's 71°C (160°F).",
  "Judging doneness by color is the mistake; only a thermometer reading of 74°C (165°F) proves it's safe.",
  "Wet your hands when shaping, because the mix is sticky.",
  qm=["What temperature should turkey burgers reach?"],
  qx=["Is it okay if my chicken burger is a bit pink in the middle?"])

T("sausages", "meat", "cook sausages", "cooking sausages",
  "Cook fresh pork sausages over medium-low heat for 12-15 minutes, to 71°C (160°F).",
  ["Start the sausages in a pan with a little oil over medium-low heat.",
   "Turn them every few minutes so they brown evenly.",
   "Check the center with a thermometer before serving."],
  "Don't prick them; the juices run out and they dry.",
  "High heat splits the casings and burns the outside before the middle is cooked.",
  "Simmer in a splash of water first, then brown once it evaporates.",
  qm=["How long do sausages take in a frying pan?"],
  qx=["Why do my sausages burst and burn?"])

T("reheating", "food safety", "reheat leftovers safely", "reheating leftovers",
  "Reheat leftovers until they reach 74°C (165°F) all the way through.",
  ["Cover the dish to trap steam and heat evenly.",
   "Stir or rotate halfway through microwaving.",
   "Check the center with a thermometer; sauces should bubble."],
  "Reheat only the portion you'll eat, and only once.",
  "Warming food only until the edges are hot leaves a cold center where bacteria survive.",
  "Let microwaved food stand 1-2 minutes so the heat spreads evenly.",
  qm=["How hot should reheated food get?"],
  qx=["Why are my microwaved leftovers still cold in the middle?"])

T("thawing", "food safety", "thaw frozen meat safely", "thawing meat",
  "Thaw meat in the fridge, allowing about 24 hours per 2.3 kg (5 lb).",
  ["Set it on a plate on the bottom shelf of the fridge.",
   "For speed, submerge it sealed in cold water, changing the water every 30 minutes.",
   "Cook water-thawed or microwave-thawed meat right away."],
  "Never thaw on the counter; the outside warms into the danger zone.",
  "Thawing on the counter is the mistake, because the surface sits at 4-60°C (40-140°F) for hours.",
  "Freeze meat flat in bags so it thaws faster.",
  qm=["What's the fastest safe way to defrost chicken?", "How long does a turkey take to thaw in the fridge?"],
  qx=["Is it okay to defrost meat on the kitchen counter?"])

T("crispy_tofu", "vegetables", "make crispy tofu", "frying tofu",
  "Press firm tofu for 15-20 minutes, then fry it over medium-high heat for 8-10 minutes.",
  ["Wrap extra-firm tofu in a towel and press under a heavy pan.",
   "Cut into cubes and toss with a little cornstarch and salt.",
   "Fry in hot oil, turning, until golden on all sides."],
  "Add sauce at the very end so the coating stays crisp.",
  "Skipping the pressing leaves water that steams the tofu instead of crisping it.",
  "Freezing and thawing tofu first gives a chewier, meatier texture.",
  qm=["How do I get tofu crispy?"],
  qx=["Why is my tofu soggy?"])

T("chicken_stock", "sauces", "make chicken stock", "making stock",
  "Simmer bones in cold water for 3-4 hours, never letting it boil hard.",
  ["Cover the bones with cold water and bring slowly to a simmer.",
   "Skim the foam, add onion, carrot, and celery, and simmer 3-4 hours.",
   "Strain, cool quickly, and refrigerate within 2 hours."],
  "Leave out the salt until you use the stock, since it may be reduced.",
  "A rolling boil emulsifies fat into the liquid and makes stock cloudy.",
  "Add chicken wings or feet for a stock that sets to jelly.",
  qm=["How long should I simmer chicken stock?"],
  qx=["Why is my homemade stock cloudy?"])

# Baking
T("cookies", "baking", "bake chocolate chip cookies", "baking cookies",
  "Bake at 190°C (375°F) for 9-11 minutes, until the edges are golden and the centers look slightly underdone.",
  ["Chill the dough for at least 30 minutes.",
   "Scoop even balls 5 cm (2 inches) apart on a lined tray.",
   "Bake, then cool on the tray 5 minutes before moving."],
  "Cookies firm up as they cool, so don't wait for the centers to look done.",
  "Overbaking until the centers look set gives hard, dry cookies.",
  "Bake one test cookie to check the spread before doing the batch.",
  qm=["What temperature and time for chocolate chip cookies?"],
  qx=["Why are my cookies hard once they cool?"])

T("cookie_spread", "baking", "stop cookies from spreading", "keeping cookies thick",
  "Chill the dough for 30-60 minutes and use butter that's cool, not melted.",
  ["Make sure the butter is soft but cool, about 18°C (65°F).",
   "Measure the flour by weight, or spoon and level it.",
   "Chill the dough and bake on a cool, lined tray."],
  "Dough on a hot tray from the last batch starts spreading early.",
  "Warm, greasy butter is the usual cause of flat, spreading cookies.",
  "A little extra flour, or some bread flour, also reduces spread.",
  qm=["How do I stop my cookies from spreading so much?"],
  qx=["My cookies came out flat as pancakes. Why?"])

T("banana_bread", "baking", "bake banana bread", "baking banana bread",
  "Bake in a 23 x 13 cm (9 x 5-inch) loaf pan at 180°C (350°F) for 55-65 minutes.",
  ["Mash very ripe, brown-spotted bananas.",
   "Stir the wet ingredients into the dry just until no flour shows.",
   "Bake until a skewer in the center comes out clean."],
  "Tent with foil after 40 minutes if the top browns too fast.",
  "Overmixing the batter develops gluten and makes the loaf dense and tough.",
  "Freeze overripe bananas; thaw them and use the liquid too.",
  qm=["How long does banana bread take to bake?"],
  qx=["Why is my banana bread dense and gummy?"])

T("bread_proofing", "baking", "proof yeast bread dough", "proofing bread dough",
  "Let the dough rise at about 24-27°C (75-80°F) until doubled, usually 1-2 hours.",
  ["Cover the dough in a lightly oiled bowl.",
   "Leave it somewhere warm and away from drafts.",
   "Press in a floured finger; if the dent springs back slowly, it's ready."],
  "Go by the poke test, not the clock; kitchens vary a lot.",
  "Overproofing makes the dough collapse, so the loaf bakes flat and sour.",
  "A cold overnight rise in the fridge gives more flavor.",
  qm=["How do I know when my bread dough has risen enough?"],
  qx=["Why did my loaf collapse in the oven?"])

T("bread_doneness", "baking", "tell when bread is fully baked", "checking bread for doneness",
  "Lean bread is done at 93-99°C (200-210°F) inside, and enriched bread at about 88°C (190°F).",
  ["Bake until the crust is deep golden.",
   "Insert a thermometer into the center from the side or base.",
   "Cool on a rack for at least 1 hour before slicing."],
  "Tap the base; a hollow sound is a good second check.",
  "Pulling bread out when the crust still looks pale leaves a gummy center.",
  "Cutting warm bread releases steam and makes the crumb gummy.",
  qm=["What internal temperature means bread is done?"],
  qx=["Why is the middle of my homemade bread gummy?"])

T("pie_crust", "baking", "make flaky pie crust", "making pie crust",
  "Keep the butter cold, add just enough ice water to hold it together, and chill the dough for 1 hour.",
  ["Cut cold butter into the flour until pea-sized pieces remain.",
   "Sprinkle in ice water a tablespoon at a time until it clumps.",
   "Flatten into a disc, wrap, and chill 1 hour before rolling."],
  "Visible streaks of butter are what make the layers flaky.",
  "Overworking the dough or using warm butter makes a tough, shrinking crust.",
  "Replace half the water with cold vodka for a more tender dough.",
  qm=["How do I make a flaky pie crust?"],
  qx=["Why is my pie crust tough?"])

T("blind_baking", "baking", "blind-bake a pie crust", "blind-baking",
  "Bake the lined crust with weights at 200°C (400°F) for 15-20 minutes, then 5-10 minutes without.",
  ["Chill the lined pan 30 minutes, then prick the base.",
   "Line with parchment and fill to the top with pie weights or dried beans.",
   "Bake, lift out the weights, and bake until the base is dry and golden."],
  "Fill the weights right up the sides to stop slumping.",
  "Skipping the chill makes the sides slump down during baking.",
  "Brush the hot crust with beaten egg to seal it against wet fillings.",
  qm=["How long do I blind bake a pastry case?"],
  qx=["Why do the sides of my pie crust shrink and slide down?"])

T("muffins", "baking", "bake muffins", "making muffins",
  "Bake muffins at 200°C (400°F) for 18-22 minutes, after mixing the batter only briefly.",
  ["Whisk the dry and wet ingredients in separate bowls.",
   "Fold together in about 15 strokes; lumps are fine.",
   "Fill the cups three-quarters full and bake until springy."],
  "A few lumps mean tender muffins; smooth batter means tough ones.",
  "Overmixing creates tunnels and a tough, rubbery crumb.",
  "Check with a skewer; a few moist crumbs mean they're done.",
  qm=["What oven temperature for muffins?"],
  qx=["Why are my muffins tough with tunnels inside?"])

T("pancakes", "baking", "make fluffy pancakes", "making pancakes",
  "Cook on a medium-hot pan, about 190°C (375°F), for 2-3 minutes until bubbles pop, then 1-2 minutes more.",
  ["Mix the batter just until combined and rest it 10 minutes.",
   "Ladle onto a lightly greased, preheated pan.",
   "Flip once when the edges look set and bubbles stay open."],
  "The first pancake is a test; adjust the heat after it.",
  "Beating the batter smooth develops gluten and makes pancakes flat and chewy.",
  "Keep finished pancakes warm in a 95°C (200°F) oven.",
  qm=["When do I flip pancakes?", "How hot should the pan be for pancakes?"],
  qx=["Why are my pancakes flat and chewy?"])

T("creaming", "baking", "cream butter and sugar", "creaming butter and sugar",
  "Beat soft butter, about 18-20°C (65-68°F), with sugar for 3-5 minutes until pale and fluffy.",
  ["Soften the butter until it dents easily but isn't greasy.",
   "Beat it with the sugar on medium speed for 3-5 minutes.",
   "Scrape the bowl, then add eggs one at a time."],
  "Creaming traps the air that helps cakes rise.",
  "Melted or too-warm butter can't hold air, so the cake bakes dense.",
  "Cut cold butter into cubes and it softens in about 30 minutes.",
  qm=["How long should I cream butter and sugar?"],
  qx=["Why did my cake come out dense and heavy?"])

T("measuring_flour", "baking", "measure flour accurately", "measuring flour",
  "Weigh it if you can: 1 cup of all-purpose flour is about 125 g.",
  ["Fluff up the flour in the bag or tub.",
   "Spoon it into the cup without packing.",
   "Level the top with the back of a knife."],
  "Scooping straight from the bag can add 20-30% extra flour.",
  "Scooping with the measuring cup packs in extra flour and makes bakes dry.",
  "A cheap digital scale is the best baking upgrade.",
  qm=["How many grams is a cup of flour?"],
  qx=["Why are my cakes always dry even when I follow the recipe?"])

T("layer_cake", "baking", "bake a butter layer cake", "baking layer cakes",
  "Bake 20 cm (8-inch) cake layers at 180°C (350°F) for 25-30 minutes.",
  ["Grease the pans and line the bases with parchment.",
   "Divide the batter evenly and bake on the middle rack.",
   "It's done when a skewer comes out clean and the top springs back."],
  "Cool in the pan 10 minutes, then turn out onto a rack.",
  "Opening the oven in the first 20 minutes lets the cake sink in the middle.",
  "Weigh the batter into each pan for even layers.",
  qm=["How long does an 8-inch cake take to bake?"],
  qx=["Why did my cake sink in the middle?"])

T("brownies", "baking", "bake fudgy brownies", "baking brownies",
  "Bake in a 20 cm (8-inch) square pan at 180°C (350°F) for 20-25 minutes.",
  ["Line the pan with parchment, leaving an overhang.",
   "Bake until the edges are set and the center barely wobbles.",
   "Cool completely before cutting."],
  "Take them out when a skewer shows moist crumbs, not wet batter.",
  "Baking until a skewer comes out clean overcooks brownies into cake.",
  "Chill them before slicing for clean edges.",
  qm=["How long do brownies bake in an 8x8 pan?"],
  qx=["Why are my brownies dry and cakey?"])

T("scones", "baking", "make scones", "making scones or biscuits",
  "Bake scones at 220°C (425°F) for 12-15 minutes, using very cold butter.",
  ["Rub cold butter into the flour until it looks like coarse crumbs.",
   "Stir in cold milk just until the dough holds together.",
   "Pat 2.5 cm (1 inch) thick, cut straight down, and bake."],
  "Don't twist the cutter; it seals the edges and stops the rise.",
  "Kneading the dough like bread makes scones tough and flat.",
  "Place them close together on the tray so they rise taller.",
  qm=["What temperature do I bake scones at?", "How do I make tall, flaky biscuits?"],
  qx=["Why are my scones flat and hard?"])

T("pizza", "baking", "bake pizza at home", "baking homemade pizza",
  "Bake for 6-8 minutes at 250°C (480°F) or higher on a stone or steel preheated for 45-60 minutes.",
  ["Preheat the stone or steel on the top-third rack.",
   "Stretch room-temperature dough and top it lightly.",
   "Slide it on and bake until the crust is blistered."],
  "Cold dough tears and resists stretching, so let it warm up for 1 hour.",
  "Piling on wet toppings makes the center soggy and raw.",
  "Dust the peel with a little semolina so the pizza slides off.",
  qm=["What temperature should I bake pizza at in a home oven?"],
  qx=["Why is my pizza soggy in the middle?"])

T("whipped_cream", "baking", "whip cream", "whipping cream",
  "Whip cold cream with at least 30% fat for 2-4 minutes to soft peaks.",
  ["Chill the bowl and whisk for 15 minutes.",
   "Whip the cold cream with a little sugar on medium speed.",
   "Stop when the peaks hold but droop at the tip."],
  "If it turns grainy, fold in a splash of unwhipped cream to smooth it.",
  "Warm cream or low-fat cream won't hold air, so it stays runny.",
  "Stop at soft peaks; it stiffens more as you pipe or fold.",
  qm=["How long do I whip cream for soft peaks?"],
  qx=["Why won't my cream whip?"])

T("meringue", "baking", "whip egg whites for meringue", "making meringue",
  "Whip room-temperature whites to soft peaks, then add sugar gradually until stiff and glossy.",
  ["Use a spotless bowl with no trace of yolk or grease.",
   "Whip the whites to soft peaks on medium speed.",
   "Add sugar a spoonful at a time and whip until glossy."],
  "Bake meringues low, around 100°C (210°F), for 1-1.5 hours.",
  "A speck of yolk or grease stops the whites from whipping up.",
  "Wipe the bowl with lemon juice to remove hidden grease.",
  qm=["How do I whip egg whites into stiff peaks?"],
  qx=["Why won't my egg whites whip?"])

T("melting_chocolate", "baking", "melt chocolate", "melting chocolate",
  "Microwave chopped chocolate at 50% power in 30-second bursts, stirring between each.",
  ["Chop the chocolate into small, even pieces.",
   "Heat in short bursts, or over barely simmering water.",
   "Stop while a few lumps remain and stir until smooth."],
  "Keep every drop of water out; it makes chocolate seize.",
  "A splash of water or steam makes chocolate seize into a stiff, grainy paste.",
  "To rescue seized chocolate for a sauce, stir in boiling water 1 teaspoon at a time.",
  qm=["What's the best way to melt chocolate without burning it?"],
  qx=["My chocolate went thick and grainy when melting. What happened?"])

# Knife skills
T("dice_onion", "knife skills", "dice an onion", "dicing onions",
  "Halve the onion through the root, make vertical and horizontal cuts, then slice across.",
  ["Halve through the root and peel, leaving the root on.",
   "Make vertical cuts toward the root, not through it.",
   "Slice across the cuts to release even dice."],
  "The root end holds the layers together while you cut.",
  "Cutting off the root first lets the layers fall apart under the knife.",
  "A sharp knife crushes fewer cells, so you cry less.",
  qm=["What's the fastest way to chop an onion?"],
  qx=["Why does my onion fall apart when I try to dice it?"])

T("mince_garlic", "knife skills", "mince garlic", "mincing garlic",
  "Crush the clove under the flat of the knife, peel it, then rock-chop for about 1 minute.",
  ["Trim the root end and press the clove with the flat blade.",
   "Pull off the skin and slice thinly.",
   "Rock the knife through the pile until finely minced."],
  "Add a pinch of salt and scrape with the blade for a smooth paste.",
  "Burning minced garlic is the classic mistake; it turns bitter in seconds over high heat.",
  "Add garlic for the last 30-60 seconds, once onions have softened.",
  qm=["How do I mince garlic finely without a press?"],
  qx=["Why does my garlic taste bitter?"])

T("knife_sharpening", "knife skills", "keep my kitchen knife sharp", "sharpening knives",
  "Hone the edge at 15-20 degrees before each use, and sharpen on a whetstone every few months.",
  ["Hold the steel upright with its tip on a towel.",
   "Draw the blade down at 15-20 degrees, alternating sides, 5-6 times.",
   "Sharpen on a whetstone when honing no longer helps."],
  "Honing realigns the edge; only sharpening removes metal.",
  "Putting knives in the dishwasher dulls and chips the edge.",
  "Cut on wood or plastic boards, never glass or stone.",
  qm=["How often should I sharpen my knives?", "What's the difference between honing and sharpening?"],
  qx=["Why do my knives go dull so fast?"])

T("knife_grip", "knife skills", "hold a chef's knife safely", "chopping with a chef's knife",
  "Pinch the blade just in front of the handle and curl your other hand into a claw.",
  ["Grip the blade between thumb and index finger at the bolster.",
   "Tuck your fingertips back so your knuckles guide the blade.",
   "Rock the knife forward and down, keeping the tip on the board."],
  "Put a damp towel under the board so it can't slide.",
  "Holding food with flat, outstretched fingers puts your fingertips in the knife's path.",
  "Cut a flat side on round foods so they sit steady.",
  qm=["How should I hold a knife so I don't cut myself?"],
  qx=["I keep nicking my fingers when chopping. What am I doing wrong?"])

T("julienne", "knife skills", "julienne carrots", "cutting julienne",
  "Cut 5 cm (2-inch) lengths into 3 mm (1/8-inch) planks, then into 3 mm (1/8-inch) matchsticks.",
  ["Cut the carrot into 5 cm (2-inch) pieces and square off one side.",
   "Slice into 3 mm (1/8-inch) planks.",
   "Stack a few planks and slice them into matchsticks."],
  "Even sticks cook evenly, which matters in a stir-fry.",
  "Stacking too many planks makes them slide and gives uneven sticks.",
  "A mandoline speeds this up, but always use the guard.",
  qm=["How do you cut carrots into matchsticks?"],
  qx=["Why do my julienne cuts come out uneven?"])

T("chiffonade", "knife skills", "slice basil into thin ribbons", "cutting soft herbs",
  "Stack the leaves, roll them tightly, and slice across into 1-2 mm ribbons.",
  ["Stack 5-6 dry basil leaves.",
   "Roll them lengthwise into a tight cigar.",
   "Slice across with a sharp knife, then fluff the ribbons."],
  "Cut basil right before serving; it darkens within 30 minutes.",
  "Chopping soft herbs over and over with a dull knife bruises them black.",
  "Add tender herbs at the end of cooking to keep their flavor.",
  qm=["What's a chiffonade and how do I do it?"],
  qx=["Why does my chopped basil turn black?"])

# Substitutions
T("buttermilk", "substitutions", "make a buttermilk substitute", "substituting for buttermilk",
  "Stir 1 tablespoon of lemon juice or white vinegar into enough milk to make 240 ml (1 cup).",
  ["Put the lemon juice or vinegar in a measuring cup.",
   "Top up with milk to 240 ml (1 cup) and stir.",
   "Rest 5-10 minutes until slightly thickened, then use."],
  "Plain yogurt thinned with milk, 3 parts to 1, also works well.",
  "Using plain milk without acid leaves the baking soda unreacted, so bakes rise poorly and taste soapy.",
  "Whole milk thickens best; skim works but stays thin.",
  qm=["I have no buttermilk, what can I use?", "Can I make buttermilk from regular milk?"],
  qx=["I used regular milk instead of buttermilk and my pancakes were flat. Why?"])

T("egg_substitute", "substitutions", "replace eggs in baking", "baking without eggs",
  "Replace 1 egg with 1 tablespoon of ground flaxseed mixed with 3 tablespoons of water.",
  ["Stir the flaxseed and water together.",
   "Rest 5-10 minutes until thick and gel-like.",
   "Use it as you would one beaten egg."],
  "Or use 60 g (1/4 cup) of applesauce per egg in muffins and quick breads.",
  "Replacing more than 2 eggs in a recipe that relies on them for structure makes it collapse.",
  "Egg substitutes work best in muffins, cookies, and brownies.",
  qm=["I'm out of eggs. What can I use in muffins instead?", "What's a vegan egg replacement for baking?"],
  qx=["I replaced all the eggs in my sponge cake and it fell apart. Why?"])

T("self_rising", "substitutions", "make self-rising flour", "substituting self-rising flour",
  "Mix 125 g (1 cup) of all-purpose flour with 1 1/2 teaspoons of baking powder and 1/4 teaspoon of salt.",
  ["Measure the flour into a bowl.",
   "Add the baking powder and salt.",
   "Whisk well so the leavening is evenly spread."],
  "Check the baking powder is fresh: a spoonful should fizz in hot water.",
  "Not mixing thoroughly leaves pockets of baking powder that taste bitter.",
  "Make only what you need, since leavening loses strength over time.",
  qm=["How do I make self-raising flour at home?"],
  qx=["Why did my homemade self-rising flour leave bitter spots in the cake?"])

T("baking_powder_sub", "substitutions", "substitute for baking powder", "replacing baking powder",
  "Mix 1/4 teaspoon of baking soda with 1/2 teaspoon of cream of tartar to replace 1 teaspoon of baking powder.",
  ["Measure the baking soda and cream of tartar.",
   "Whisk them into the dry ingredients.",
   "Bake promptly, because the mix starts working once wet."],
  "Never swap baking soda 1:1 for baking powder; it's about 3-4 times stronger.",
  "Using baking soda alone without an acid gives a metallic, soapy taste.",
  "Test baking soda with a splash of vinegar; it should fizz hard.",
  qm=["I ran out of baking powder. What can I use?"],
  qx=["I used baking soda instead of baking powder and it tastes soapy. What went wrong?"])

T("dried_herbs", "substitutions", "swap dried herbs for fresh", "substituting dried herbs",
  "Use 1 teaspoon of dried herbs for every 1 tablespoon of fresh.",
  ["Measure a third of the fresh amount in dried herbs.",
   "Crumble them between your fingers to wake up the oils.",
   "Add dried herbs early and fresh ones near the end."],
  "Dried herbs older than a year lose most of their flavor.",
  "Swapping dried herbs for fresh one-for-one overpowers the dish.",
  "Basil, parsley, and cilantro are best fresh; oregano and thyme dry well.",
  qm=["How much dried oregano equals fresh?", "Can I use dried herbs instead of fresh?"],
  qx=["I used the same amount of dried thyme as fresh and it tastes too strong. Why?"])

T("oil_for_butter", "substitutions", "use oil instead of butter in baking", "replacing butter with oil",
  "Use about three-quarters as much oil: 180 ml (3/4 cup) of oil for 225 g (1 cup) of butter.",
  ["Pick a neutral oil such as canola or sunflower.",
   "Measure three-quarters of the butter quantity.",
   "Mix it in with the wet ingredients."],
  "This suits muffins, quick breads, and oil cakes, not creamed cakes.",
  "Using oil in a recipe that creams butter and sugar leaves no trapped air, so the cake is dense.",
  "Oil-based cakes stay moist longer than butter ones.",
  qm=["Can I use vegetable oil instead of butter in muffins?"],
  qx=["I swapped oil for butter in a pound cake and it turned out dense. Why?"])

T("sour_cream_sub", "substitutions", "replace sour cream", "substituting sour cream",
  "Use plain full-fat Greek yogurt as a 1:1 swap for sour cream.",
  ["Measure the same amount of Greek yogurt.",
   "Stir it smooth before adding.",
   "Add it to hot dishes off the heat to avoid curdling."],
  "Thin it with a spoonful of milk if the recipe needs a looser texture.",
  "Boiling yogurt in a sauce makes it curdle and turn grainy.",
  "Crème fraîche is the best swap for hot sauces, because it won't split.",
  qm=["Can I use Greek yogurt instead of sour cream?"],
  qx=["Why did my yogurt curdle when I stirred it into a hot sauce?"])

T("cornstarch", "substitutions", "thicken with cornstarch instead of flour", "thickening with cornstarch",
  "Use 1 tablespoon of cornstarch in place of 2 tablespoons of flour for thickening.",
  ["Mix the cornstarch with 2 tablespoons of cold water.",
   "Whisk the slurry into the simmering liquid.",
   "Simmer 1-2 minutes until glossy and thick."],
  "Cornstarch gives a clear, glossy finish; flour gives an opaque one.",
  "Adding cornstarch powder straight into hot liquid forms lumps instantly.",
  "Boiling a cornstarch sauce for too long can thin it again.",
  qm=["How much cornstarch replaces flour in gravy?"],
  qx=["Why did my sauce go lumpy when I added cornstarch?"])

T("cream_sub", "substitutions", "substitute for heavy cream in cooking", "replacing heavy cream",
  "Mix 60 g (1/4 cup) of melted butter with 180 ml (3/4 cup) of whole milk to replace 240 ml (1 cup) of cream.",
  ["Melt the butter and let it cool slightly.",
   "Whisk it into the milk.",
   "Use it straight away in sauces, soups, or baking."],
  "This mix won't whip; it only works for cooking.",
  "Expecting the butter and milk swap to whip is the common mistake; it stays liquid.",
  "For soups, evaporated milk is another good substitute.",
  qm=["I don't have heavy cream. What can I use for a pasta sauce?"],
  qx=["I tried to whip milk and butter as a cream substitute and it stayed liquid. Why?"])

T("brown_sugar_sub", "substitutions", "make brown sugar at home", "substituting brown sugar",
  "Mix 200 g (1 cup) of white sugar with 1 tablespoon of molasses for light brown sugar.",
  ["Put the white sugar in a bowl.",
   "Add the molasses, or 2 tablespoons for dark brown sugar.",
   "Mash with a fork until evenly colored."],
  "Store it airtight so it doesn't harden.",
  "Using plain white sugar in cookies gives crisper, paler, less chewy results.",
  "Soften hard brown sugar with a slice of bread in the container overnight.",
  qm=["I'm out of brown sugar. Can I make it?"],
  qx=["I used white sugar instead of brown in my cookies and they're crisp and pale. Why?"])

T("wine_sub", "substitutions", "replace wine in a recipe", "cooking without wine",
  "Use the same amount of stock plus 1 teaspoon of vinegar or lemon juice per 120 ml (1/2 cup).",
  ["Choose chicken or vegetable stock for white wine, beef stock for red.",
   "Stir the acid into the stock.",
   "Add it exactly where the recipe adds wine."],
  "Grape juice alone is too sweet unless cut with vinegar.",
  "Leaving the wine out entirely makes the sauce flat and short on acidity.",
  "Taste at the end and add a drop more acid if needed.",
  qm=["What can I use instead of white wine in risotto?"],
  qx=["I skipped the wine in my stew and it tastes flat. Why?"])

# Storage and food safety
T("two_hour_rule", "food safety", "keep cooked food safe at room temperature", "leaving cooked food out",
  "Refrigerate perishable food within 2 hours, or within 1 hour above 32°C (90°F).",
  ["Keep hot food above 60°C (140°F) and cold food below 4°C (40°F).",
   "Put leftovers in the fridge within 2 hours.",
   "Throw out food left in the danger zone longer than that."],
  "Reheating doesn't destroy every bacterial toxin, so timing matters.",
  "Leaving food out overnight is the classic slip, since some bacterial toxins survive reheating.",
  "Set a timer when serving buffets or picnics.",
  qm=["How long can cooked food sit out before it's unsafe?"],
  qx=["Is it okay to leave a curry out overnight if I reheat it?"])

T("fridge_temp", "food safety", "set my fridge and freezer temperatures", "setting fridge temperatures",
  "Keep the fridge at 4°C (40°F) or below and the freezer at -18°C (0°F).",
  ["Put an appliance thermometer in the middle of the fridge.",
   "Check it after 24 hours and adjust the dial.",
   "Store raw meat on the bottom shelf."],
  "Don't overpack the fridge; cold air needs to circulate.",
  "Trusting the dial without a thermometer often leaves the fridge too warm.",
  "The door is the warmest spot, so keep milk on a shelf.",
  qm=["What temperature should my fridge be?"],
  qx=["Why does my milk go off before the date?"])

T("leftovers", "food safety", "store leftovers", "storing leftovers",
  "Refrigerate leftovers within 2 hours and eat them within 3-4 days, or freeze them.",
  ["Divide food into shallow containers so it cools quickly.",
   "Label with the date and refrigerate.",
   "Freeze anything you won't eat within 3-4 days."],
  "When in doubt, throw it out; smell isn't a reliable test.",
  "Judging leftovers by smell is the mistake, because dangerous bacteria often don't change the smell.",
  "Freeze portions flat in bags for faster thawing.",
  qm=["How long do leftovers last in the fridge?"],
  qx=["My leftovers smell fine after a week. Are they safe?"])

T("cooling_soup", "food safety", "cool a big pot of soup safely", "cooling large batches",
  "Cool soup from 60°C to 21°C (140°F to 70°F) within 2 hours, then to 4°C (40°F) within 4 more.",
  ["Split the soup into shallow containers.",
   "Or stand the pot in a sink of ice water and stir.",
   "Refrigerate uncovered until cold, then cover."],
  "A full stockpot in the fridge can stay warm for hours.",
  "Putting a whole hot stockpot in the fridge cools it too slowly and warms everything around it.",
  "Freeze water bottles to use as ice wands for stirring.",
  qm=["How do I cool a large pot of chili quickly?"],
  qx=["Can I put a hot pot of soup straight into the fridge?"])

T("raw_chicken", "food safety", "handle raw chicken safely", "handling raw chicken",
  "Don't wash raw chicken; cooking it to 74°C (165°F) kills the bacteria.",
  ["Pat the chicken dry with paper towels and bin them.",
   "Use a separate board and knife for raw meat.",
   "Wash hands and surfaces with hot, soapy water."],
  "Keep raw meat on the bottom fridge shelf so it can't drip.",
  "Rinsing chicken under the tap is the mistake, because it splashes bacteria around the sink and counter.",
  "Drying the skin well also helps it brown.",
  qm=["Should I wash raw chicken before cooking?"],
  qx=["Is rinsing chicken in the sink a bad idea?"])

T("cutting_boards", "food safety", "avoid cross-contamination with cutting boards", "using cutting boards",
  "Use one board for raw meat and another for ready-to-eat food.",
  ["Color-code or label your boards.",
   "If sharing a board, cut vegetables before raw meat.",
   "Wash boards in hot, soapy water after raw meat."],
  "Replace boards with deep grooves that can't be cleaned.",
  "Slicing salad on the board you just used for raw chicken transfers bacteria.",
  "Oil wooden boards monthly with food-safe mineral oil.",
  qm=["Do I need separate cutting boards for meat?"],
  qx=["Is it okay to chop salad on the board I just used for chicken?"])

T("storing_herbs", "storage", "store fresh herbs", "storing herbs",
  "Stand soft herbs in water and wrap hardy herbs in damp paper towel; both last about 1-2 weeks.",
  ["Trim the stems and remove any wilted leaves.",
   "Stand parsley or cilantro in a jar of water, loosely bagged, in the fridge.",
   "Wrap rosemary or thyme in damp paper towel in a bag."],
  "Keep basil in water on the counter; the fridge blackens it.",
  "Sealing wet herbs in a bag makes them slimy within days.",
  "Freeze chopped herbs in oil in an ice-cube tray.",
  qm=["How do I keep cilantro fresh longer?"],
  qx=["Why do my herbs go slimy in the fridge?"])

T("freezing", "storage", "freeze food without freezer burn", "freezing food",
  "Freeze food airtight at -18°C (0°F); most cooked dishes keep their best quality for 2-3 months.",
  ["Cool the food completely before freezing.",
   "Pack in freezer bags, squeezing out all the air.",
   "Label with the contents and date."],
  "Freezer-burned food is safe to eat, but it's dry and tasteless.",
  "Leaving air in the container causes freezer burn, those dry grey patches.",
  "Freeze in meal-sized portions so you thaw only what you need.",
  qm=["How long can I keep cooked food in the freezer?"],
  qx=["What causes freezer burn?"])

T("bread_storage", "storage", "store bread", "storing bread",
  "Keep bread at room temperature for 2-3 days, or freeze it sliced for up to 3 months.",
  ["Store it cut side down in a bread box or paper bag.",
   "Slice and freeze what you won't eat in 2-3 days.",
   "Toast slices straight from frozen."],
  "Revive a stale loaf by spritzing it with water and baking at 180°C (350°F) for 5-10 minutes.",
  "Keeping bread in the fridge makes it go stale faster.",
  "Plastic bags keep the crumb soft but soften crusty loaves.",
  qm=["What's the best way to keep bread fresh?"],
  qx=["Why does my bread go stale so quickly in the fridge?"])

# Sauces
T("bechamel", "sauces", "make a béchamel sauce", "making white sauce",
  "Cook 2 tablespoons each of butter and flour for 2 minutes, then whisk in 240 ml (1 cup) of warm milk.",
  ["Melt the butter and stir in the flour over medium heat.",
   "Cook the roux 2 minutes without browning.",
   "Whisk in the warm milk gradually and simmer 5 minutes."],
  "Season with salt, pepper, and a pinch of nutmeg at the end.",
  "Dumping in all the milk at once makes lumps.",
  "If it's lumpy, whisk hard or pass it through a sieve.",
  qm=["How do I make a white sauce for lasagna?"],
  qx=["Why is my white sauce lumpy?"])

T("pan_sauce", "sauces", "make a pan sauce", "making a pan sauce",
  "Deglaze the pan with 120 ml (1/2 cup) of wine or stock, reduce by half, then swirl in cold butter.",
  ["Pour off excess fat, leaving the browned bits.",
   "Add the liquid and scrape the pan as it bubbles.",
   "Reduce by half, then whisk in 1-2 tablespoons of cold butter off the heat."],
  "Add any resting juices from the meat for extra flavor.",
  "Boiling the sauce after adding the butter makes it greasy and split.",
  "A spoonful of mustard helps hold the sauce together.",
  qm=["How do I make a sauce from the bits left in the pan after steak?"],
  qx=["Why did my pan sauce turn greasy?"])

T("hollandaise_fix", "fixes", "fix a split hollandaise", "rescuing a broken butter sauce",
  "Whisk a fresh yolk with 1 tablespoon of warm water, then slowly whisk the split sauce into it.",
  ["Put a new yolk and 1 tablespoon of warm water in a clean bowl.",
   "Whisk in the broken sauce a teaspoon at a time at first.",
   "Once it thickens, add the rest in a thin stream."],
  "Keep hollandaise below about 65°C (150°F), or the yolks scramble.",
  "Adding butter too fast, or letting the bowl get too hot, splits the sauce.",
  "Hold finished hollandaise in a warmed thermos to keep it stable.",
  qm=["My sauce split, how do I fix it?", "My hollandaise curdled. Can I save it?"],
  qx=["Why does my hollandaise keep splitting?"])

T("mayonnaise", "sauces", "make mayonnaise", "making mayonnaise",
  "Whisk 1 egg yolk with 1 teaspoon of mustard, then add 240 ml (1 cup) of oil drop by drop.",
  ["Whisk the yolk, mustard, and a pinch of salt.",
   "Add oil a few drops at a time until it thickens.",
   "Stream in the rest, then season with lemon juice."],
  "Use pasteurized eggs if serving anyone vulnerable.",
  "Adding the oil too fast at the start makes mayonnaise split.",
  "If it splits, whisk it slowly into a fresh yolk to rescue it.",
  qm=["How do I make homemade mayo?"],
  qx=["Why did my mayonnaise turn runny and oily?"])

T("vinaigrette", "sauces", "make a vinaigrette", "making salad dressing",
  "Use 3 parts oil to 1 part vinegar, with 1 teaspoon of mustard to hold it together.",
  ["Whisk the vinegar, mustard, and salt until the salt dissolves.",
   "Slowly whisk in the oil.",
   "Taste on a leaf and adjust the salt or acid."],
  "Dress the salad just before serving so the leaves stay crisp.",
  "Mixing oil and vinegar without an emulsifier like mustard makes it separate right away.",
  "Dissolve the salt in the vinegar first; it won't dissolve in oil.",
  qm=["What's the ratio for a basic vinaigrette?"],
  qx=["Why does my dressing separate right away?"])

T("tomato_sauce", "sauces", "make a simple tomato sauce", "making tomato sauce",
  "Simmer 800 g (28 oz) of crushed tomatoes with olive oil and garlic for 20-30 minutes.",
  ["Gently cook sliced garlic in olive oil until fragrant.",
   "Add the tomatoes and a pinch of salt.",
   "Simmer, stirring, until thickened, then add basil."],
  "Good canned tomatoes beat out-of-season fresh ones.",
  "Browning the garlic too far makes the whole sauce bitter.",
  "A knob of butter at the end rounds off sharp acidity.",
  qm=["How long should I simmer tomato sauce?"],
  qx=["Why does my tomato sauce taste bitter?"])

T("acidic_sauce", "fixes", "fix a sauce that's too acidic", "balancing an acidic sauce",
  "Stir in a pinch of baking soda, about 1/4 teaspoon per 1 liter (1 quart), or a little butter.",
  ["Taste to confirm it's sour rather than under-salted.",
   "Add the baking soda and stir as it foams.",
   "Simmer 2 minutes, taste, and adjust."],
  "Too much baking soda tastes soapy, so add it gradually.",
  "Adding lots of sugar is the mistake; it makes the sauce sweet but still sharp.",
  "Sometimes a little more salt is all a sharp sauce needs.",
  qm=["My tomato sauce is too acidic. How do I fix it?"],
  qx=["I added sugar to my sour sauce and now it's sweet and sour. What went wrong?"])

T("gravy", "sauces", "make gravy from pan drippings", "making gravy",
  "Cook 2 tablespoons each of fat and flour, then whisk in 240 ml (1 cup) of stock and simmer 5 minutes.",
  ["Pour off the drippings, keeping 2 tablespoons of fat in the pan.",
   "Stir in the flour and cook 1-2 minutes.",
   "Whisk in warm stock gradually and simmer until thick."],
  "Lumpy gravy can be strained or blended smooth.",
  "Adding flour straight into hot liquid forms lumps.",
  "Add the defatted meat juices for deeper flavor.",
  qm=["How do I make gravy from turkey drippings?"],
  qx=["Why does my gravy always go lumpy?"])

T("cheese_sauce", "sauces", "make a smooth cheese sauce", "making cheese sauce",
  "Stir grated cheese into hot béchamel off the heat, a handful at a time.",
  ["Make a béchamel and take it off the heat.",
   "Add freshly grated cheese a handful at a time.",
   "Stir until smooth, warming gently only if needed."],
  "Pre-shredded cheese has anti-caking starch that can make the sauce gritty.",
  "Boiling the sauce after adding cheese tightens the proteins and makes it grainy.",
  "If it's already grainy, blend it with a splash of warm milk.",
  qm=["How do I make cheese sauce for mac and cheese?"],
  qx=["Why is my cheese sauce grainy?"])

T("caramel", "sauces", "make caramel sauce", "making caramel",
  "Cook sugar to deep amber, about 175°C (350°F), then carefully whisk in warm cream.",
  ["Heat 200 g (1 cup) of sugar with 60 ml (1/4 cup) of water without stirring.",
   "Swirl the pan until the syrup turns deep amber.",
   "Off the heat, whisk in 120 ml (1/2 cup) of warm cream, then butter."],
  "It bubbles violently, so use a deep pan and a long whisk.",
  "Stirring the syrup makes it crystallize into grainy lumps.",
  "Brush the pan sides with a wet pastry brush to dissolve stray crystals.",
  qm=["How do I make caramel sauce?"],
  qx=["Why did my caramel turn grainy and solid?"])

T("pesto", "sauces", "make basil pesto", "making pesto",
  "Blend 60 g (2 cups) of basil with garlic, pine nuts, parmesan, and about 120 ml (1/2 cup) of olive oil.",
  ["Toast the pine nuts lightly and let them cool.",
   "Pulse the basil, garlic, nuts, and cheese.",
   "Stream in the oil and season with salt."],
  "Cover the surface with oil to stop it darkening.",
  "Blending too long heats and bruises the basil, turning pesto dark and bitter.",
  "Blanch the basil for 10 seconds, then ice it, to keep pesto bright green.",
  qm=["What's in a classic basil pesto?"],
  qx=["Why does my pesto turn brown?"])

# Seasoning
T("dry_brine", "seasoning", "dry-brine meat", "dry brining",
  "Salt meat with about 1% of its weight, 5 g per 500 g (1 lb), at least 40 minutes ahead.",
  ["Pat the meat dry and sprinkle salt evenly over every surface.",
   "Refrigerate it uncovered on a rack.",
   "Cook without rinsing, patting dry if needed."],
  "Salting 40 minutes to 24 hours ahead gives juicier, better-seasoned meat.",
  "Salting only 5-10 minutes before cooking draws out moisture that hasn't had time to reabsorb.",
  "Leave poultry uncovered overnight for crispier skin.",
  qm=["How far ahead should I salt a steak?"],
  qx=["Why is my steak wet on the surface when I salt it just before cooking?"])

T("wet_brine", "seasoning", "brine chicken or pork", "wet brining",
  "Use 50 g of salt per 1 liter of water (about 3 tablespoons of table salt per quart) for 1-2 hours.",
  ["Dissolve the salt in cold water, adding sugar or aromatics if you like.",
   "Submerge the chops or breasts and refrigerate.",
   "Rinse briefly, pat very dry, and cook."],
  "Whole chickens can brine 4-12 hours; go easy on salt when seasoning.",
  "Brining too long makes the meat spongy and overly salty.",
  "Chill the brine fully before the meat goes in.",
  qm=["What's the salt ratio for brining chicken breasts?"],
  qx=["My brined pork chops came out salty and spongy. Why?"])

T("flat_food", "seasoning", "fix food that tastes flat", "seasoning to taste",
  "Add salt first, then a squeeze of acid like lemon juice or vinegar.",
  ["Taste a spoonful and add a pinch of salt.",
   "Taste again and add a few drops of lemon or vinegar.",
   "Repeat in small steps until the flavors pop."],
  "Season in layers as you cook, not just at the end.",
  "Adding more spices to a dull dish rarely helps when it's really missing salt or acid.",
  "Fresh herbs or a grating of zest add brightness at the end.",
  qm=["My soup tastes bland. What's missing?"],
  qx=["I keep adding spices but my stew still tastes dull. Why?"])

T("toasting_spices", "seasoning", "toast whole spices", "toasting spices",
  "Toast whole spices in a dry pan over medium heat for 1-2 minutes, until fragrant.",
  ["Heat a dry skillet over medium heat.",
   "Add the spices and shake the pan constantly.",
   "Tip onto a plate as soon as they smell toasty, then grind."],
  "Ground spices burn fast, so bloom them in oil for 30-60 seconds instead.",
  "Walking away from the pan burns spices in seconds and makes them bitter.",
  "Buy whole spices; they keep their flavor far longer than ground.",
  qm=["Should I toast spices before using them?"],
  qx=["Why do my toasted cumin seeds taste bitter?"])

T("too_spicy", "fixes", "fix a dish that's too spicy", "taming too much chili heat",
  "Dilute the heat with more of the base, then add dairy, sugar, or acid to balance it.",
  ["Add more of the mild base, like beans, stock, or tomatoes.",
   "Stir in yogurt, cream, or coconut milk.",
   "Balance with a pinch of sugar and a squeeze of lime."],
  "Serve with rice or bread to soften each bite.",
  "Reaching for water is the mistake, because capsaicin dissolves in fat, not water.",
  "Add chili gradually and taste; you can't take it out.",
  qm=["I put too much chili in my curry. How do I fix it?"],
  qx=["Why doesn't water help when my food is too spicy?"])

T("too_salty", "fixes", "fix a soup that's too salty", "fixing an oversalted dish",
  "Dilute it with unsalted stock or water, then add a little acid to balance.",
  ["Remove some liquid and replace it with unsalted stock or water.",
   "Add more unsalted vegetables, beans, or grains.",
   "Finish with lemon juice or vinegar to distract from the salt."],
  "A potato absorbs very little salt; dilution is what actually works.",
  "Salting heavily early in a soup that will reduce is how it ends up too salty.",
  "Season lightly at the start and adjust at the end.",
  qm=["I oversalted my soup. How do I fix it?", "My stew is too salty, help!"],
  qx=["Why does my soup end up too salty even though I measured?"])

T("too_sweet", "fixes", "fix a dish that's too sweet", "balancing sweetness",
  "Add acid like lemon juice or vinegar, plus a pinch of salt.",
  ["Add a few drops of lemon juice or vinegar.",
   "Add a pinch of salt and stir.",
   "Taste, and add something bitter like coffee or cocoa if needed."],
  "Adjust in small steps, because acid quickly takes over.",
  "Adding water is the mistake; it dilutes the flavor but doesn't fix the imbalance.",
  "Chili heat also helps offset sweetness in savory dishes.",
  qm=["My barbecue sauce is way too sweet. How can I fix it?"],
  qx=["I added water to my too-sweet sauce and it just tastes weak. Why?"])

T("salt_types", "seasoning", "swap table salt and kosher salt", "converting salt types",
  "Use about 1.5-2 teaspoons of kosher salt for every 1 teaspoon of table salt, depending on the brand.",
  ["Check which salt the recipe was written for.",
   "Use more kosher salt, because its flakes are larger.",
   "Weigh salt when you can, since grams are equal for all types."],
  "Diamond Crystal kosher salt is about half as salty as table salt by volume.",
  "Swapping table salt 1:1 for kosher salt can make a dish nearly twice as salty.",
  "Stick to one salt for everyday cooking so you learn its strength.",
  qm=["How much kosher salt equals a teaspoon of table salt?"],
  qx=["I used table salt instead of kosher and my brine was way too salty. Why?"])

# Fixing mistakes
T("scorched_pot", "fixes", "rescue a pot of stew that burnt on the bottom", "dealing with scorched food",
  "Stop stirring and pour the unburnt part into a clean pot right away.",
  ["Take the pot off the heat immediately.",
   "Ladle the top into a new pot without scraping the bottom.",
   "Taste; if it's smoky, add acid or dairy to mask it."],
  "Soak the burnt pot in baking soda and water before scrubbing.",
  "Stirring the scorched bottom mixes burnt flavor through the whole pot.",
  "Use a heavy pot and low heat for thick stews.",
  qm=["I burnt the bottom of my chili. Can I save it?"],
  qx=["Why does my whole stew taste burnt when only the bottom caught?"])

T("curdled_custard", "fixes", "fix curdled custard", "rescuing custard",
  "Take it off the heat at once, then blend and strain it.",
  ["Pour it into a cold bowl to stop the cooking.",
   "Blend with a stick blender until smooth.",
   "Strain through a fine sieve."],
  "Custard thickens around 80°C (175°F) and curdles above about 85°C (185°F).",
  "Cooking custard over high heat makes the eggs scramble.",
  "Stir constantly over low heat; it's done when it coats a spoon.",
  qm=["My custard curdled. Can I save it?"],
  qx=["Why does my custard turn lumpy like scrambled eggs?"])

T("thin_soup", "fixes", "thicken a thin soup", "thickening soup",
  "Simmer it uncovered for 10-15 minutes, or blend part of it and stir it back in.",
  ["Simmer uncovered to reduce the liquid.",
   "Blend a cup or two and stir it back in.",
   "Or whisk in a cornstarch slurry and simmer 1-2 minutes."],
  "Reduce before the final seasoning, since salt concentrates.",
  "Adding raw flour at the end leaves a pasty, floury taste.",
  "Mash some beans or potato against the side of the pot for instant body.",
  qm=["How can I thicken a watery soup?"],
  qx=["I added flour to thicken my soup and it tastes raw. Why?"])

T("dry_chicken_fix", "fixes", "rescue overcooked, dry chicken", "saving dry chicken",
  "Slice or shred it and warm it gently in sauce or broth for 2-3 minutes.",
  ["Slice thinly across the grain, or shred.",
   "Warm gently in broth, gravy, or sauce.",
   "Use it in tacos, soups, or dressed salads."],
  "Next time, use a thermometer and take it off at 74°C (165°F).",
  "Reheating dry chicken on its own dries it out even more.",
  "A mayonnaise-based chicken salad hides dryness well.",
  qm=["My chicken came out dry. Can I still use it?"],
  qx=["Why does leftover chicken get even drier when I microwave it?"])

T("stuck_cake", "fixes", "get a cake out of the pan in one piece", "unmolding cakes",
  "Cool the cake for 10 minutes, run a knife around the edge, then invert it.",
  ["Grease the pan and line the base with parchment before baking.",
   "Cool 10 minutes on a rack, then loosen the sides with a thin knife.",
   "Invert onto a rack and peel off the paper."],
  "If it's stuck, rewarm the base in a low oven for 5 minutes.",
  "Turning the cake out piping hot tears it, and leaving it too long makes it stick.",
  "Bundt pans need butter and flour in every crevice.",
  qm=["How do I stop my cake sticking to the pan?"],
  qx=["Why does my cake break when I turn it out?"])

# Equipment
T("cast_iron", "equipment", "care for a cast-iron skillet", "cleaning cast iron",
  "Wash it with hot water, dry it on the stove, and wipe on a thin coat of oil.",
  ["Scrub with hot water and a brush; a little soap is fine.",
   "Dry completely over low heat.",
   "Rub in a few drops of oil and wipe off the excess."],
  "To re-season, bake a thin coat of oil upside down at 230°C (450°F) for 1 hour.",
  "Soaking cast iron or letting it air-dry causes rust.",
  "Cook fatty foods often in the early days to build the seasoning.",
  qm=["How do I clean a cast-iron pan?"],
  qx=["Why is my cast-iron pan rusty?"])

T("nonstick", "equipment", "look after a nonstick pan", "using nonstick pans",
  "Cook on low to medium heat with wooden or silicone tools, and wash it by hand.",
  ["Add a little oil or butter before heating.",
   "Use only wooden or silicone utensils.",
   "Let it cool, then hand-wash with a soft sponge."],
  "Replace it when the coating flakes or food starts sticking.",
  "Preheating an empty nonstick pan on high damages the coating.",
  "Skip aerosol cooking sprays; they leave a sticky residue.",
  qm=["How do I make my nonstick pan last longer?"],
  qx=["Why is my nonstick pan suddenly sticking?"])

T("stainless", "equipment", "stop food sticking to a stainless steel pan", "cooking in stainless steel",
  "Preheat the pan for 2-3 minutes until a drop of water beads and skates, then add oil.",
  ["Heat the empty pan over medium heat.",
   "Test with a few drops of water; they should dance.",
   "Add oil, then the food, and don't move it until it releases."],
  "Pat meat dry first; surface water makes it stick.",
  "Adding food to a cold or barely warm pan makes it weld to the steel.",
  "Stuck brown bits are flavor, so deglaze them into a sauce.",
  qm=["How do I keep chicken from sticking to my stainless steel pan?"],
  qx=["Why does everything stick to my stainless pan?"])

T("thermometer", "equipment", "use an instant-read meat thermometer", "using a meat thermometer",
  "Insert the probe into the thickest part, away from bone, and read it after 2-3 seconds.",
  ["Push the tip into the center of the thickest part.",
   "Avoid bone and fat, which give false readings.",
   "Check a second spot on large roasts."],
  "Calibrate it in ice water; it should read 0°C (32°F).",
  "Touching bone with the probe gives a falsely high reading.",
  "Wash the probe between raw and cooked checks.",
  qm=["Where should the thermometer go in a roast?"],
  qx=["Why did my chicken read done but was still pink at the bone?"])

T("convection", "equipment", "convert a recipe for a convection oven", "baking in a fan oven",
  "Lower the temperature by about 15°C (25°F) and start checking early.",
  ["Set the oven 15°C (25°F) lower than the recipe says.",
   "Use low-sided pans so the air can circulate.",
   "Check 5-10 minutes before the stated time."],
  "Many fan ovens adjust automatically, so check your manual.",
  "Using the conventional temperature in a fan oven browns the outside before the inside cooks.",
  "Fan ovens are great for roasting and crisp cookies.",
  qm=["Do I need to lower the temperature in a fan oven?"],
  qx=["Why are my cakes dark outside but raw inside in my convection oven?"])

T("deep_frying", "equipment", "deep-fry at home", "deep frying",
  "Fry at 175-190°C (350-375°F), checked with a thermometer, in small batches.",
  ["Fill a heavy pot no more than half full of neutral oil.",
   "Heat to temperature and add a few pieces at a time.",
   "Drain on a rack and let the oil recover between batches."],
  "Never put water on an oil fire; cover it with a lid and turn off the heat.",
  "Overcrowding drops the oil temperature and makes food greasy.",
  "Salt fried food the moment it comes out.",
  qm=["What oil temperature do I need for deep-frying?"],
  qx=["Why is my fried food greasy and soggy?"])

T("hot_blender", "equipment", "blend hot soup safely", "blending hot liquids",
  "Fill the blender no more than a third full and vent the lid.",
  ["Let the soup cool for 5 minutes.",
   "Fill one-third full, remove the lid's center cap, and cover with a towel.",
   "Start on low, then increase the speed."],
  "A stick blender in the pot is safer and saves washing up.",
  "Sealing a full blender of hot soup can blow the lid off.",
  "Blend in batches and pour into a clean pot.",
  qm=["Can I put hot soup in a blender?"],
  qx=["Why did my blender lid blow off with hot soup?"])


# --------------------------------------------------------------------------
# Rendering and splitting
# --------------------------------------------------------------------------

def render(short, steps, note):
    return ("Short answer: " + short + "\nSteps:\n"
            + "\n".join(f"{i}. {s}" for i, s in enumerate(steps, 1))
            + "\nChef's note: " + note)


def answer(topic, qtype):
    if qtype == "method":
        return render(topic["key"], topic["steps"], topic["note"])
    return render(topic["mistake"], topic["steps"], topic["tip"])


def candidates(topic, qtype, rng):
    """Hand-written phrasings first, then shuffled template phrasings."""
    if qtype == "method":
        custom, templates = topic["qm"], METHOD_TEMPLATES
    else:
        custom, templates = topic["qx"], MISTAKE_TEMPLATES
    filled = [t.format(do=topic["do"], doing=topic["doing"]) for t in templates]
    rng.shuffle(filled)
    out = []
    for q in custom + filled:
        if norm(q) not in (norm(x) for x in out):
            out.append(q)
    return out


def norm(q):
    return re.sub(r"[^a-z0-9]+", " ", q.lower()).strip()


def example(q, a):
    return {"messages": [{"role": "system", "content": SYSTEM},
                         {"role": "user", "content": q},
                         {"role": "assistant", "content": a}]}


def build():
    rng = random.Random(SEED)
    pairs = [(t["id"], qt) for t in TOPICS for qt in ("method", "mistake")]
    by_id = {t["id"]: t for t in TOPICS}

    # Test pairs: both pairs of the demo topic, plus at most one pair per other topic.
    test_pairs = [("soft_boiled_egg", "method"), ("soft_boiled_egg", "mistake")]
    others = [t["id"] for t in TOPICS if t["id"] != "soft_boiled_egg"]
    for tid in rng.sample(others, N_TEST_PAIRS - len(test_pairs)):
        test_pairs.append((tid, rng.choice(["method", "mistake"])))
    test_set = set(test_pairs)

    train, test = [], []
    for tid, qt in pairs:
        topic = by_id[tid]
        qs = candidates(topic, qt, rng)
        a = answer(topic, qt)
        if (tid, qt) in test_set:
            chosen = qs[:2]
            test.extend((tid, qt, q, a) for q in chosen)
        else:
            k = TRAIN_METHOD_PHRASINGS if qt == "method" else rng.choice([1, 1, 2])
            chosen = qs[:k]
            train.extend((tid, qt, q, a) for q in chosen)
    rng.shuffle(train)
    rng.shuffle(test)
    return train, test, test_set


ANSWER_RE = re.compile(
    r"Short answer: [^\n]+\.\nSteps:\n1\. [^\n]+\.\n2\. [^\n]+\.\n3\. [^\n]+\.\n"
    r"Chef's note: [^\n]+\.")


def validate(path, rows):
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(rows), path
    for ln in lines:
        obj = json.loads(ln)
        msgs = obj["messages"]
        assert [m["role"] for m in msgs] == ["system", "user", "assistant"], ln
        assert all(isinstance(m["content"], str) and m["content"].strip() for m in msgs), ln
        assert msgs[0]["content"] == SYSTEM
        a = msgs[2]["content"]
        assert ANSWER_RE.fullmatch(a), a
        n = len(a.split())
        assert MIN_WORDS <= n <= MAX_WORDS, (n, a)
        assert "–" not in a and "—" not in a, a  # ranges use a plain hyphen
    return [json.loads(ln) for ln in lines]


def write(path, rows):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for _, _, q, a in rows:
            f.write(json.dumps(example(q, a), ensure_ascii=False) + "\n")


def main():
    ids = [t["id"] for t in TOPICS]
    assert len(ids) == len(set(ids)), "duplicate topic id"
    for t in TOPICS:
        assert len(t["steps"]) == 3, t["id"]

    train, test, test_set = build()
    assert build() == (train, test, test_set), "build is not deterministic"

    train_path, test_path = HERE / "train.jsonl", HERE / "test.jsonl"
    write(train_path, train)
    write(test_path, test)
    tr = validate(train_path, train)
    te = validate(test_path, test)

    train_q = {norm(o["messages"][1]["content"]) for o in tr}
    test_q = [norm(o["messages"][1]["content"]) for o in te]
    assert len(train_q) == len(tr), "duplicate question in train"
    assert len(set(test_q)) == len(test_q), "duplicate question in test"
    assert not train_q & set(test_q), "test question leaked into train"
    assert not {(tid, qt) for tid, qt, _, _ in train} & test_set, "test pair leaked into train"
    assert DEMO_PROMPT in (o["messages"][1]["content"] for o in te), "demo prompt missing from test"
    assert not any(w in q for q in train_q for w in ("runny yolk", "soft boil", "dippy")), "demo-equivalent question in train"

    words = [len(o["messages"][2]["content"].split()) for o in tr + te]
    digest = hashlib.sha256(train_path.read_bytes() + test_path.read_bytes()).hexdigest()[:12]
    print(f"topics: {len(TOPICS)}  categories: {len({t['cat'] for t in TOPICS})}")
    print(f"train: {len(tr)} examples from {len({(a, b) for a, b, _, _ in train})} (topic, qtype) pairs")
    print(f"test:  {len(te)} examples from {len(test_set)} held-out (topic, qtype) pairs")
    print(f"answer words: min {min(words)}  max {max(words)}  mean {sum(words) / len(words):.1f}")
    print(f"sha256[:12] of train+test: {digest}")


if __name__ == "__main__":
    main()
