"""The pages that read S3, in a real browser, on a moto S3 server that `dart up` reads through
DART_AWS_ENDPOINT_URL: the dataset guess form (an S3 prefix in, the server's proposal out as an editable
dataset form, saved as a new dataset) and a subscription's elements and stats."""

from __future__ import annotations

import re
from collections.abc import Iterator

import boto3
import pytest
from playwright.sync_api import Page, expect

from bench.harness.moto import AWS_ENV, moto_server
from bench.harness.stacks import RunningDart
from tests.ui.conftest import DIST, Api, sign_in

BUCKET = "ui-lake"
CSV = b"sale_id,store,amount,sold_on\n1,Main St,19.99,2020-03-01\n2,Airport,5,2020-03-02\n"


@pytest.fixture(scope="module")
def dart(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDart]:
    assert DIST.exists(), "the UI is not built: run ./dart (it builds services/ui) or npm run build there"
    with moto_server() as endpoint:
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id=AWS_ENV["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=AWS_ENV["AWS_SECRET_ACCESS_KEY"])
        s3.create_bucket(Bucket=BUCKET)
        s3.put_object(Bucket=BUCKET, Key="sales/part-00000.csv", Body=CSV)
        running = RunningDart(tmp_path_factory.mktemp("dart-ui-guess"), None, DART_AWS_ENDPOINT_URL=endpoint,
                              **AWS_ENV)
        try:
            yield running
        finally:
            running.stop()


def test_guess_a_dataset_edit_the_proposal_and_save_it(page: Page, api: Api) -> None:
    sign_in(page)
    page.get_by_role("navigation", name="Entities").get_by_role("link", name="Guess a dataset").click()
    page.get_by_label("S3 prefix").fill(f"s3://{BUCKET}/sales/")
    page.get_by_role("button", name="Guess").click()
    expect(page.locator("#root_location")).to_have_value(f"s3://{BUCKET}/sales")
    expect(page.locator("#root_columns_0_name")).to_have_value("sale_id")
    expect(page.locator("#root_columns_3_name")).to_have_value("sold_on")
    page.locator("#root_name").fill("guessed_sales")
    page.get_by_role("button", name="Save dataset").click()
    expect(page.get_by_role("heading", name=re.compile(r"dataset \w+ guessed_sales"))).to_be_visible()
    dataset_id = page.url.rstrip("/").rsplit("/", 1)[1]
    saved = api.get(f"/dataset/{dataset_id}")["data"]
    assert saved["name"] == "guessed_sales"
    assert [c["name"] for c in saved["columns"]] == ["sale_id", "store", "amount", "sold_on"]


def test_a_subscriptions_page_shows_its_elements_and_stats(page: Page, api: Api) -> None:
    dataset = api.post("/dataset", {"data": {
        "name": "subscribed_sales", "table_name": "t", "location": f"s3://{BUCKET}/sales", "load_type": "INSERT",
        "data_format": {"file_format": "TEXTFILE", "row_format": "DELIMITED", "delimited_by": "COMMA",
                        "num_header_rows": 1},
        "columns": [{"name": "a", "data_type": "STRING"}], "compression": "NONE"}})
    subscription = api.post(f"/dataset/{dataset['id']}/subscription", {"data": {"name": "sales_files"}})
    sign_in(page, f"/subscription/{subscription['id']}")
    stats = page.get_by_role("table", name="Element stats")
    expect(stats.locator("tbody tr")).to_have_count(1, timeout=30_000)  # once the listing has run
    expect(stats.locator("tbody tr")).to_contain_text("1")
    expect(page.get_by_role("table", name="Elements")).to_contain_text(f"s3://{BUCKET}/sales/part-00000.csv")
    expect(page.get_by_role("table", name="Elements")).to_contain_text(str(len(CSV)))
