"""Outside reference reports (外部公开报告): a bureau imports published reports with their metadata; an upload
that copies one is found and the card labels the source "外部公开报告"; references are never submissions."""
from __future__ import annotations

import io
import zipfile

import openpyxl
import pytest
import sqlalchemy as sa

from evalhub.core.errors import PermissionDenied, ValidationFailed
from evalhub.extensions import db
from evalhub.review.models import Submission
from evalhub.screening import references as refs
from evalhub.screening import services as S
from evalhub.screening.index import reference_doc_id
from evalhub.screening.models import IndexedDocument, ReferenceDocument, ReportScreening
from tests.factories import docx_bytes
from tests.screening_support import report_text, upload_report

# A published report from another province: its findings and recommendations are what a firm copies.
PUBLISHED = "\n".join([
    "2023年度某县高标准农田建设项目绩效评价报告",
    "一、基本情况",
    "该项目建设高标准农田1.2万亩，涉及东湖镇、西山乡两个乡镇。",
    "六、存在的问题及原因分析",
    "一是部分田块灌排渠系与田间道路衔接不畅，雨季积水影响机械下田作业，群众反映较多。",
    "二是管护经费未纳入年度预算，建后管护责任主体不明确，部分设施出现损毁后无人修复。",
    "七、有关建议",
    "建议县农业农村局牵头制定建后管护办法，明确乡镇、村组和受益农户的管护责任与经费来源。",
])


def _zip(*files: tuple[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files:
            archive.writestr(name, data)
    return buffer.getvalue()


def _sheet(*rows) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["文件名", "标题", "地区", "年度", "机构", "网址"])
    for row in rows:
        sheet.append(list(row))
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _import(world, **kw):
    archive = _zip(("某县高标准农田.docx", docx_bytes(PUBLISHED)), ("另一份.txt", ("无关的公开报告正文。" * 20).encode("utf-8")))
    metadata = _sheet(("某县高标准农田.docx", "某县2023年度高标准农田建设项目绩效评价报告", "甘肃省某县", 2024,
                       "某某咨询有限公司", "https://czj.example.gov.cn/art/2024/5/1/art_1.html"))
    return refs.import_references(kw.get("actor", world.bz_staff), "公开报告.zip", archive, metadata)


@pytest.fixture(autouse=True)
def _fresh():
    S.forget_cache()
    yield
    S.forget_cache()


def test_a_copied_outside_passage_is_found_and_labelled(world):
    result = _import(world)
    db.session.commit()
    assert len(result.added) == 2 and result.duplicates == []
    reference = db.session.execute(sa.select(ReferenceDocument).where(ReferenceDocument.filename == "某县高标准农田.docx")).scalar_one()
    assert (reference.region, reference.year, reference.url) == ("甘肃省某县", 2024, "https://czj.example.gov.cn/art/2024/5/1/art_1.html")
    assert db.session.get(IndexedDocument, reference_doc_id(reference.id)) is not None

    # A firm's report whose problems and recommendations are the published ones, word for word.
    own = report_text("农田水利设施建设项目", "巴州农业农村局", "测试评价咨询有限公司", specific=True)
    copied = own.replace("一是光明乡配套资金18万元迟至2024年11月才到位，导致2处设施延期。",
                         "一是部分田块灌排渠系与田间道路衔接不畅，雨季积水影响机械下田作业，群众反映较多。"
                         "二是管护经费未纳入年度预算，建后管护责任主体不明确，部分设施出现损毁后无人修复。")
    _engagement, submission = upload_report(world, copied)
    db.session.commit()
    screening = S.screening_for(submission)
    outside = [p for p in screening.passages if p["source_doc_id"] == reference_doc_id(reference.id)]
    assert outside and "管护经费未纳入年度预算" in outside[0]["text"]
    assert outside[0]["source_label"].startswith("外部公开报告 · 某县2023年度高标准农田建设项目绩效评价报告")

    card = S.flag_card(screening, world.bz_staff)
    [passage] = [p for p in card["passages"] if p["reference"] is not None]
    assert passage["relation_label"] == "外部公开报告" and passage["source"] is None
    assert "管护经费未纳入年度预算" in passage["source_text"]
    # a bureau that did not import it reads it too: it is a published report
    assert any(p["reference"] for p in S.flag_card(screening, world.bz_admin)["passages"])
    # the API's copied passages name it, with no submission id
    api = S.screen_text("建议县农业农村局牵头制定建后管护办法，明确乡镇、村组和受益农户的管护责任与经费来源。"
                        "二是管护经费未纳入年度预算，建后管护责任主体不明确，部分设施出现损毁后无人修复。", world.bz_staff)
    assert any(c["relation"] == "reference" and c["source_submission_id"] is None and c["source"].startswith("外部公开报告")
               for c in api["copied_passages"])


def test_the_card_page_shows_the_outside_source(world, login):
    _import(world)
    own = report_text("农田水利设施建设项目", "巴州农业农村局", "测试评价咨询有限公司")
    copied = own.replace("一是光明乡配套资金18万元迟至2024年11月才到位，导致2处设施延期。",
                         "二是管护经费未纳入年度预算，建后管护责任主体不明确，部分设施出现损毁后无人修复。"
                         "一是部分田块灌排渠系与田间道路衔接不畅，雨季积水影响机械下田作业，群众反映较多。")
    _engagement, submission = upload_report(world, copied)
    db.session.commit()
    screening = S.screening_for(submission)
    page = login(world.bz_staff).get(f"/screening/{screening.id}").get_data(as_text=True)
    assert "外部公开报告" in page and 'data-testid="reference-source"' in page
    assert "https://czj.example.gov.cn/art/2024/5/1/art_1.html" in page


def test_references_are_never_submissions_nor_ranked(world):
    _import(world)
    db.session.commit()
    assert db.session.execute(sa.select(sa.func.count()).select_from(Submission)).scalar_one() == 0
    assert db.session.execute(sa.select(sa.func.count()).select_from(ReportScreening)).scalar_one() == 0
    assert S.queue(world.bz_staff, year=2024) == [] and S.queue(world.bz_staff, year=2023) == []


def test_bad_metadata_refuses_the_whole_batch(world):
    archive = _zip(("a.txt", ("公开报告正文内容。" * 20).encode("utf-8")))
    with pytest.raises(ValidationFailed) as bad_year:
        refs.import_references(world.bz_staff, "a.zip", archive, _sheet(("a.txt", "标题", "某地", "二〇二四", "", "")))
    assert "第 2 行年度" in bad_year.value.message and "metadata" in bad_year.value.fields
    with pytest.raises(ValidationFailed) as missing:
        refs.import_references(world.bz_staff, "a.zip", archive, _sheet(("b.txt", "标题", "某地", 2024, "", "")))
    assert "b.txt" in missing.value.message
    with pytest.raises(ValidationFailed) as bad_url:
        refs.import_references(world.bz_staff, "a.zip", archive, _sheet(("a.txt", "标题", "某地", 2024, "", "javascript:alert(1)")))
    assert "网址无效" in bad_url.value.message
    with pytest.raises(ValidationFailed) as not_zip:
        refs.import_references(world.bz_staff, "a.exe", b"MZ\x90\x00" + b"\x00" * 100)
    assert "文件类型不符" in not_zip.value.message
    db.session.rollback()
    assert db.session.execute(sa.select(sa.func.count()).select_from(ReferenceDocument)).scalar_one() == 0


def test_the_same_report_twice_is_skipped(world):
    _import(world)
    again = _import(world)
    assert again.added == [] and len(again.duplicates) == 2
    # the same text saved as another file type is the same report
    resaved = refs.import_references(world.bz_staff, "重存.txt", PUBLISHED.encode("gb18030"))
    assert resaved.added == [] and resaved.duplicates == ["重存.txt"]


def test_who_may_import_and_delete(world):
    with pytest.raises(PermissionDenied):
        _import(world, actor=world.firm_user)
    result = _import(world)
    db.session.commit()
    reference = result.added[0]
    with pytest.raises(PermissionDenied):  # another prefecture's bureau
        refs.delete_reference(reference, world.kz_staff)
    refs.delete_reference(reference, world.bz_staff)
    db.session.commit()
    assert db.session.get(IndexedDocument, reference_doc_id(reference.id)) is None


def test_reference_pages(world, login):
    client = login(world.bz_staff)
    archive = _zip(("甲.txt", ("一份公开发布的绩效评价报告的正文内容。" * 10).encode("utf-8")))
    response = client.post("/screening/references", data={"archive": (io.BytesIO(archive), "甲.zip")},
                           content_type="multipart/form-data")
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    page = client.get("/screening/references").get_data(as_text=True)
    assert "甲" in page and "外部公开报告" in page
    bad = client.post("/screening/references", data={"archive": (io.BytesIO(b"\x00\x01garbage"), "x.zip")},
                      content_type="multipart/form-data")
    assert bad.status_code == 422 and "文件类型不符" in bad.get_data(as_text=True)
    reference = db.session.execute(sa.select(ReferenceDocument)).scalar_one()

    # the firm never sees the page; another prefecture neither lists nor deletes 巴州's references
    assert login(world.firm_user).get("/screening/references").status_code == 403
    other = login(world.kz_staff)
    assert "甲.txt" not in other.get("/screening/references").get_data(as_text=True)
    assert other.post(f"/screening/references/{reference.id}/delete").status_code == 403
    assert login(world.firm_user).post(f"/screening/references/{reference.id}/delete").status_code == 403
    done = login(world.bz_staff).post(f"/screening/references/{reference.id}/delete")
    assert done.status_code == 302
    assert db.session.execute(sa.select(sa.func.count()).select_from(ReferenceDocument)).scalar_one() == 0
