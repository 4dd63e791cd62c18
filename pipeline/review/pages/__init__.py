"""The workbench's pages, one blueprint each (what each is for: README, section petition review)."""
from pipeline.review.pages import account, cases, letters, person, retrain, tonight

BLUEPRINTS = (account.blueprint, tonight.blueprint, cases.blueprint, letters.blueprint, person.blueprint,
              retrain.blueprint)
