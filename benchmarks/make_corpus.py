#!/usr/bin/env python
"""A seeded synthetic medical-looking corpus, in Chinese and English, for the prepare benchmarks.

    python benchmarks/make_corpus.py --size 100MB --out /tmp/medtrain-bench/corpus-100MB
    python benchmarks/make_corpus.py --size 1GB   --out /tmp/medtrain-bench/corpus-1GB

Half of the bytes go to `.txt` shards (one document per line), half to `.jsonl` shards
(`{"text": ...}` per line), each shard at most `--shard-size` bytes. Documents are one sentence to
20,000 characters long, skewed: most are a few hundred characters, about one in seven is a long record
of thousands. Each document is Chinese or English (Chinese ones quote English drug names sometimes).

Everything is deterministic for a given --seed: the vocabulary and templates below are hand-written
for this benchmark; sentences are made once into pools by filling templates, and documents are
joined from pool sentences chosen with numpy's seeded generator. Output is written in big chunks, so
1 GB takes well under two minutes. A corpus already in --out with the same parameters is kept
(delete the directory, or pass --force, to make it again).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import time

import numpy as np

# ---------------------------------------------------------------------------------------------------
# vocabulary (hand-written for this benchmark)
# ---------------------------------------------------------------------------------------------------
EN = {
    "age": [str(a) for a in range(18, 92)],
    "sex": ["man", "woman", "male patient", "female patient"],
    "condition": [
        "type 2 diabetes", "essential hypertension", "community-acquired pneumonia", "atrial fibrillation",
        "chronic kidney disease", "heart failure with reduced ejection fraction", "asthma", "COPD",
        "iron deficiency anemia", "hypothyroidism", "rheumatoid arthritis", "gout", "migraine",
        "major depressive disorder", "acute pancreatitis", "cholecystitis", "urinary tract infection",
        "cellulitis", "deep vein thrombosis", "pulmonary embolism", "stable angina", "peptic ulcer disease",
        "gastroesophageal reflux disease", "osteoporosis", "psoriasis", "hepatitis B infection",
        "nephrotic syndrome", "sepsis", "ischemic stroke", "epilepsy", "Parkinson disease", "sinusitis",
    ],
    "symptom": [
        "fever", "productive cough", "shortness of breath", "chest pain", "palpitations", "fatigue",
        "nausea", "vomiting", "abdominal pain", "headache", "dizziness", "joint swelling", "night sweats",
        "weight loss", "leg edema", "dysuria", "blurred vision", "rash", "back pain", "poor appetite",
        "wheezing", "numbness in both feet", "constipation", "diarrhea", "insomnia", "hemoptysis",
    ],
    "drug": [
        "metformin", "amlodipine", "lisinopril", "losartan", "atorvastatin", "rosuvastatin", "aspirin",
        "clopidogrel", "warfarin", "apixaban", "rivaroxaban", "furosemide", "spironolactone", "insulin glargine",
        "levothyroxine", "omeprazole", "pantoprazole", "amoxicillin", "ceftriaxone", "azithromycin",
        "levofloxacin", "prednisone", "methotrexate", "allopurinol", "sertraline", "salbutamol",
        "budesonide", "empagliflozin", "dapagliflozin", "bisoprolol", "metoprolol", "heparin",
    ],
    "dose": ["5 mg", "10 mg", "20 mg", "25 mg", "40 mg", "50 mg", "100 mg", "250 mg", "500 mg", "1 g", "2 g"],
    "freq": ["once daily", "twice daily", "three times daily", "every 8 hours", "at bedtime", "weekly",
             "as needed"],
    "test": [
        "complete blood count", "HbA1c", "serum creatinine", "liver function tests", "lipid panel",
        "troponin", "BNP", "chest X-ray", "CT of the abdomen", "echocardiogram", "electrocardiogram",
        "urinalysis", "blood culture", "thyroid function tests", "D-dimer", "MRI of the brain",
        "abdominal ultrasound", "arterial blood gas", "C-reactive protein", "bone density scan",
    ],
    "finding": [
        "was within normal limits", "showed mild elevation", "was markedly abnormal",
        "showed no acute changes", "confirmed the diagnosis", "was inconclusive", "improved compared with admission",
        "suggested an infectious process", "revealed a small effusion", "showed left ventricular hypertrophy",
    ],
    "organ": ["liver", "kidney", "heart", "lung", "pancreas", "thyroid", "stomach", "colon", "brain", "spleen",
              "bladder", "skin", "joint"],
    "time": ["two days", "three weeks", "six months", "one year", "several hours", "ten days", "four weeks",
             "the past month"],
    "advice": [
        "reduce salt intake", "stop smoking", "walk for thirty minutes most days", "monitor blood glucose at home",
        "avoid alcohol", "keep a headache diary", "elevate the legs when resting", "drink enough water",
        "take the medication with food", "return if symptoms worsen", "attend the follow-up clinic",
        "check blood pressure every morning", "limit sugary drinks", "sleep at regular hours",
    ],
    "outcome": ["recovered well", "was discharged home", "remained stable", "required readmission",
                "reported fewer symptoms", "needed a dose adjustment", "was referred to a specialist"],
    "study": ["randomized trial", "cohort study", "case-control study", "meta-analysis", "cross-sectional survey",
              "retrospective review"],
    "n": [str(n) for n in (48, 120, 256, 310, 512, 840, 1200, 2400, 5000, 12000)],
    "pct": [f"{p}%" for p in (3, 5, 8, 12, 15, 18, 22, 27, 31, 40, 55)],
}
EN_TEMPLATES = [
    "A {age}-year-old {sex} presented with {symptom} and {symptom} for {time}.",
    "The patient has a history of {condition} treated with {drug} {dose} {freq}.",
    "On examination there was {symptom}, and the {test} {finding}.",
    "{drug} {dose} {freq} was started for {condition}.",
    "The {test} {finding}, so {drug} was continued.",
    "The {organ} appeared normal on {test}.",
    "Patients with {condition} often report {symptom} before the diagnosis is made.",
    "In a {study} of {n} adults, {drug} reduced the risk of {condition} by {pct}.",
    "Common adverse effects of {drug} include {symptom} and {symptom}.",
    "Before starting {drug}, check the {test} and ask about {condition}.",
    "The patient was advised to {advice} and to {advice}.",
    "After {time} of treatment the patient {outcome}.",
    "{condition} is a frequent cause of {symptom} in older adults.",
    "Do not combine {drug} with {drug} without monitoring the {test}.",
    "Q: What is the usual dose of {drug}? A: Typically {dose} {freq}, adjusted to the {test}.",
    "Q: Can {condition} cause {symptom}? A: Yes, especially when the {organ} is involved.",
    "Follow-up {test} in {time} is recommended.",
    "The differential diagnosis includes {condition}, {condition} and {condition}.",
    "Renal dosing of {drug} depends on the {test}.",
    "About {pct} of patients with {condition} develop {symptom} within {time}.",
    "Patient {name} (MRN {mrn}) was seen for {condition}; the {test} was {value}.",
    "{term} is an investigational agent studied in {condition}.",
    "A rare cause of {symptom} is {term}, which affects the {organ}.",
    "Laboratory results: {test} {value}, {test} {value}, {test} {value}.",
    "Dr. {name} prescribed {term} {dose} {freq} after the {test} returned {value}.",
    "Histology was consistent with {term} of the {organ}.",
]

ZH = {
    "age": [str(a) for a in range(18, 92)],
    "sex": ["男", "女"],
    "condition": [
        "2型糖尿病", "原发性高血压", "社区获得性肺炎", "心房颤动", "慢性肾脏病", "心力衰竭", "支气管哮喘",
        "慢性阻塞性肺疾病", "缺铁性贫血", "甲状腺功能减退症", "类风湿关节炎", "痛风", "偏头痛", "抑郁症",
        "急性胰腺炎", "胆囊炎", "尿路感染", "蜂窝织炎", "深静脉血栓", "肺栓塞", "稳定型心绞痛", "消化性溃疡",
        "胃食管反流病", "骨质疏松症", "银屑病", "慢性乙型肝炎", "肾病综合征", "脓毒症", "脑梗死", "癫痫",
        "帕金森病", "鼻窦炎",
    ],
    "symptom": [
        "发热", "咳嗽咳痰", "气短", "胸痛", "心悸", "乏力", "恶心", "呕吐", "腹痛", "头痛", "头晕", "关节肿胀",
        "盗汗", "体重下降", "双下肢水肿", "尿痛", "视物模糊", "皮疹", "腰背痛", "食欲减退", "喘息", "双足麻木",
        "便秘", "腹泻", "失眠", "咯血",
    ],
    "drug": [
        "二甲双胍", "氨氯地平", "赖诺普利", "氯沙坦", "阿托伐他汀", "瑞舒伐他汀", "阿司匹林", "氯吡格雷", "华法林",
        "阿哌沙班", "利伐沙班", "呋塞米", "螺内酯", "甘精胰岛素", "左甲状腺素", "奥美拉唑", "泮托拉唑", "阿莫西林",
        "头孢曲松", "阿奇霉素", "左氧氟沙星", "泼尼松", "甲氨蝶呤", "别嘌醇", "舍曲林", "沙丁胺醇", "布地奈德",
        "恩格列净", "达格列净", "比索洛尔", "美托洛尔", "肝素",
    ],
    "dose": ["5毫克", "10毫克", "20毫克", "25毫克", "40毫克", "50毫克", "100毫克", "250毫克", "500毫克", "1克"],
    "freq": ["每日一次", "每日两次", "每日三次", "每8小时一次", "睡前服用", "每周一次", "必要时服用"],
    "test": [
        "血常规", "糖化血红蛋白", "血肌酐", "肝功能", "血脂", "肌钙蛋白", "脑钠肽", "胸部X线", "腹部CT", "心脏超声",
        "心电图", "尿常规", "血培养", "甲状腺功能", "D-二聚体", "头颅磁共振", "腹部超声", "动脉血气", "C反应蛋白",
        "骨密度检查",
    ],
    "finding": ["未见明显异常", "轻度升高", "明显异常", "无急性改变", "支持该诊断", "结果不确定", "较入院时好转",
                "提示感染", "提示少量积液", "提示左心室肥厚"],
    "organ": ["肝脏", "肾脏", "心脏", "肺部", "胰腺", "甲状腺", "胃", "结肠", "脑", "脾脏", "膀胱", "皮肤", "关节"],
    "time": ["两天", "三周", "半年", "一年", "数小时", "十天", "一个月", "近一个月"],
    "advice": ["低盐饮食", "戒烟", "每天步行三十分钟", "在家监测血糖", "避免饮酒", "记录头痛日记", "休息时抬高双腿",
               "多饮水", "随餐服药", "症状加重时及时就诊", "按时复诊", "每天早晨测量血压", "少喝含糖饮料", "规律作息"],
    "outcome": ["恢复良好", "好转出院", "病情稳定", "再次入院", "症状明显减轻", "需要调整剂量", "转诊至专科"],
    "study": ["随机对照试验", "队列研究", "病例对照研究", "荟萃分析", "横断面调查", "回顾性分析"],
    "n": [str(n) for n in (48, 120, 256, 310, 512, 840, 1200, 2400, 5000, 12000)],
    "pct": [f"{p}%" for p in (3, 5, 8, 12, 15, 18, 22, 27, 31, 40, 55)],
    "en_drug": EN["drug"],
}
ZH_TEMPLATES = [
    "患者{sex}，{age}岁，因{symptom}伴{symptom}{time}入院。",
    "既往有{condition}病史，长期口服{drug}{dose}，{freq}。",
    "查体可见{symptom}，{test}{finding}。",
    "诊断为{condition}，给予{drug}{dose}{freq}治疗。",
    "{test}{finding}，继续使用{drug}。",
    "{test}显示{organ}未见异常。",
    "{condition}患者在确诊前常出现{symptom}。",
    "一项纳入{n}例成人的{study}显示，{drug}可使{condition}风险降低{pct}。",
    "{drug}（{en_drug}）的常见不良反应包括{symptom}和{symptom}。",
    "使用{drug}前应检查{test}，并询问有无{condition}。",
    "嘱患者{advice}，并{advice}。",
    "治疗{time}后，患者{outcome}。",
    "{condition}是老年人{symptom}的常见原因。",
    "{drug}与{drug}合用时需要监测{test}。",
    "问：{drug}的常用剂量是多少？答：一般为{dose}，{freq}，并根据{test}调整。",
    "问：{condition}会引起{symptom}吗？答：会，尤其是累及{organ}时。",
    "建议{time}后复查{test}。",
    "鉴别诊断包括{condition}、{condition}及{condition}。",
    "肾功能不全时{drug}的剂量需根据{test}调整。",
    "约{pct}的{condition}患者在{time}内出现{symptom}。",
    "患者{zh_name}，病案号{mrn}，因{condition}就诊，{test}为{value}。",
    "{zh_term}是{symptom}的少见原因，可累及{organ}。",
    "化验结果：{test}{value}，{test}{value}，{test}{value}。",
    "{zh_name}医师给予{term}（{zh_term}）{dose}{freq}。",
    "病理提示{organ}{zh_term}。",
    "出院诊断：1.{condition}；2.{zh_term}；3.{condition}。",
]

# word generators (hand-written syllables/characters), for a realistically large vocabulary:
# rare drug and disease names, patient names, lab values, record numbers
EN_SYL_A = ["ab", "zor", "ve", "cal", "mi", "tra", "lo", "nex", "pra", "cy", "dex", "ri", "va", "sol", "fen",
            "gli", "mo", "ta", "qui", "ber", "el", "on", "kar", "ul", "thy", "pen", "ro", "sa", "di", "ne"]
EN_SYL_B = ["", "ra", "li", "to", "ve", "ma", "xi", "co", "de", "nu", "pi", "ter", "ba", "so", "gen"]
EN_SYL_C = ["mab", "nib", "pril", "sartan", "statin", "olol", "azole", "cillin", "mycin", "vir", "tide",
            "parin", "gliptin", "zumab", "afil", "oxetine", "idine", "amine", "itis", "osis", "emia", "oma",
            "pathy", "algia", "plasia", "ectomy", "gram", "cyte", "lysis", "trophy"]
EN_NAMES = ["Adams", "Baker", "Chen", "Diaz", "Evans", "Foster", "Garcia", "Hughes", "Ito", "Jensen", "Khan",
            "Lopez", "Murphy", "Nguyen", "Okafor", "Patel", "Quinn", "Rossi", "Silva", "Turner", "Usman",
            "Volkov", "Wang", "Xu", "Young", "Zhou"]
ZH_SURNAMES = list("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈")
ZH_GIVEN = list("伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰飞鹏辉建国红梅志新文斌宇浩凯婷雪琳晨阳博慧佳欣怡然")
ZH_TERM = list("肝肾心肺脾胃肠胆胰脑骨血管神经皮肤关节淋巴甲状腺乳腺前列腺炎症性急慢化脓纤维硬萎缩增生瘤癌结石囊肿出梗阻"
               "狭窄扩张功能不全衰竭综合征病变损伤感染免疫代谢内分泌")
POOL_SIZE = 150_000      # sentences per language
MAX_DOC_CHARS = 20_000
META = ".corpus.json"
_SLOT = re.compile(r"\{(\w+)\}")
_JSON_UNSAFE = re.compile(r'["\\\x00-\x1f\n\r]')


def _words(rng: np.random.Generator) -> dict:
    """Generated word lists (seeded): pseudo drug/disease terms, names, numbers."""
    def pick(lst, n):
        return [lst[i] for i in rng.integers(0, len(lst), n)]

    n = 30_000
    en_terms = sorted({a + b + c for a, b, c in zip(pick(EN_SYL_A, n), pick(EN_SYL_B, n),
                                                                        pick(EN_SYL_C, n))})
    en_terms += sorted({a + b + b2 + c for a, b, b2, c in zip(pick(EN_SYL_A, n), pick(EN_SYL_B, n),
                                                               pick(EN_SYL_B, n), pick(EN_SYL_C, n))})
    zh_terms = sorted({"".join(pick(ZH_TERM, int(k))) for k in rng.integers(2, 6, n)})
    zh_names = sorted({a + "".join(pick(ZH_GIVEN, int(k))) for a, k in zip(pick(ZH_SURNAMES, n),
                                                                          rng.integers(1, 3, n))})
    initials = [chr(c) for c in range(ord("A"), ord("Z") + 1)]
    en_names = [f"{a}. {b}" for a, b in zip(pick(initials, 5000), pick(EN_NAMES, 5000))]
    values = [f"{v:.1f}" for v in rng.lognormal(2.0, 1.2, 20_000)]
    records = [str(v) for v in rng.integers(10**5, 10**8, 20_000)]
    return {"term": en_terms, "zh_term": zh_terms, "name": en_names, "zh_name": zh_names,
            "value": values, "mrn": records}


def _fill(template: str, vocab: dict, rng: np.random.Generator) -> str:
    return _SLOT.sub(lambda m: vocab[m.group(1)][rng.integers(len(vocab[m.group(1)]))], template)


def sentence_pool(vocab: dict, templates: list[str], n: int, rng: np.random.Generator) -> list[str]:
    pool = [_fill(templates[rng.integers(len(templates))], vocab, rng) for _ in range(n)]
    pool = [s[0].upper() + s[1:] for s in pool]  # (English sentences that open with a slot)
    for s in pool:  # the jsonl writer relies on this: texts need no JSON escaping
        assert not _JSON_UNSAFE.search(s), s
    return pool


def doc_lengths(rng: np.random.Generator, n: int) -> np.ndarray:
    """Target characters per document: 85% short (median ~180), 15% long (median ~4,000), <= 20,000."""
    long = rng.random(n) < 0.15
    chars = np.where(long, rng.lognormal(np.log(4000), 0.8, n), rng.lognormal(np.log(180), 1.0, n))
    return np.minimum(chars, MAX_DOC_CHARS)


_POOLS: dict = {}


def pools(seed: int) -> dict:
    """The sentence pools (the same for every stream of a seed; built once per process)."""
    if seed not in _POOLS:
        base = np.random.default_rng([seed, 0])
        words = _words(base)
        _POOLS[seed] = {"en": sentence_pool({**EN, **words}, EN_TEMPLATES, POOL_SIZE, base),
                        "zh": sentence_pool({**ZH, **words}, ZH_TEMPLATES, POOL_SIZE, base)}
    return _POOLS[seed]


class DocStream:
    """Documents in chunks: each a language, a target length, and pool sentences up to it."""

    def __init__(self, seed: int, stream: int):
        self.pools = pools(seed)
        self.sep = {"en": " ", "zh": ""}
        self.mean = {k: float(np.mean([len(s) for s in p])) + len(self.sep[k]) for k, p in self.pools.items()}
        self.rng = np.random.default_rng([seed, 1 + stream])

    def chunk(self, n_docs: int = 4096) -> list[str]:
        rng = self.rng
        lang_zh = rng.random(n_docs) < 0.5
        target = doc_lengths(rng, n_docs)
        docs = []
        for lang in ("en", "zh"):
            sel = np.flatnonzero(lang_zh if lang == "zh" else ~lang_zh)
            k = np.maximum(1, np.round(target[sel] / self.mean[lang]).astype(np.int64))
            idx = rng.integers(0, POOL_SIZE, int(k.sum())).tolist()
            pool, sep = self.pools[lang], self.sep[lang]
            bounds = np.concatenate([[0], np.cumsum(k)]).tolist()
            docs.append((sel, [sep.join([pool[j] for j in idx[a:b]])[:MAX_DOC_CHARS]
                               for a, b in zip(bounds[:-1], bounds[1:])]))
        out: list = [None] * n_docs
        for sel, texts in docs:
            for i, t in zip(sel.tolist(), texts):
                out[i] = t
        return out


# ---------------------------------------------------------------------------------------------------
# --kind language: varied-vocabulary Chinese and English (written for this benchmark)
# ---------------------------------------------------------------------------------------------------
# A corpus of a few hundred template sentences flatters tokenizers that cache whole words or segments:
# real text keeps meeting new words (Heaps' law). This generator composes sentences word by word from
# large lexicons with Zipf-like frequencies: English words are the hand-written vocabulary above plus
# ~60,000 generated word forms (syllables + derivational and inflectional endings); Chinese words are
# 1-4 characters drawn from the hand-ordered common characters below (most frequent first) with a
# long tail over the whole CJK Unified Ideographs block. Sentence length, punctuation, numbers with
# units, code-switching and paragraph breaks vary with the seeded generator.
EN_FUNCTION = (
    "the of and to a in is was for that with on as by at from it be are this an or which were has had "
    "not but after before during between into than also may can should would could will been being "
    "their its our your his her they we he she who whose when where while because although however "
    "therefore thus these those such each every most more less many few some any no all both either "
    "neither per over under about against without within among through until since if then so very "
    "only even still already often usually rarely again further once here there how why what"
).split()
EN_ONSET = ["", "b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "z", "br",
            "cr", "dr", "fl", "gr", "pl", "pr", "st", "str", "th", "sh", "ch", "sp", "tr", "sc", "cl", "bl",
            "gl", "qu", "ph", "wh"]
EN_VOWEL = ["a", "e", "i", "o", "u", "a", "e", "i", "o", "ai", "ea", "ee", "oo", "ou", "io", "ia", "y"]
EN_CODA = ["", "", "n", "r", "s", "t", "l", "m", "nd", "st", "ng", "ck", "rt", "nt", "x", "ph", "ct", "lt"]
EN_SUFFIX = ["", "", "", "s", "s", "ed", "ing", "tion", "ness", "ity", "ous", "al", "ic", "ize", "ly",
             "ment", "er", "ers", "ist", "ology", "itis", "emia", "ectomy", "ase", "ine", "ide", "able"]
ZH_COMMON = (
    "的一是不了在人有我他这个们中来上大为和国地到以说时要就出会可也你对生能而子那得于着下自之年过发后作里"
    "用道行所然家种事成方多经么去法学如都同现当没动面起看定天分还进好小部其些主样理心她本前开但因只从想实"
    "日者意无力它与长把机十民第公此已工使情明性知全三又关点正业外将两高间由问很最重并物手应向头文体政美相"
    "见被利什二等产或新己制身果加西斯月话合回特代内信表化老给世位次度门任常先海通教儿原东声提立及比员解水"
    "名真论处走义各入几口认条平系气题活尔更别打女变四神总何电数安少报才结反受目太量再感建务做接必场件计管"
    "期市直德资命山金指克许统区保至队形社便空决治展马科司五基眼书非则听白却界达光放强即像难且权思王象完设"
    "式色路记南品住告类求据程北边死张该交规万取拉格望觉术领共确传师观清今切院让识候带导争运笑飞风步改收根"
    "干造言联持组每济车亲极林服快办议往元英士证近失转夫令准布始怎呢存未远叫台单影具罗字爱击流备兵连调深商"
    "算质团集百需价花党华城石级整府离况亚请技际约示复病息究线似官火断精满支视消越器容照须九增研写称企八功"
    "吗包片史委乎查轻易早曾除农找装广显吧阿李标谈吃图念六引历首医局突专费号尽另周较注语仅考落青随选列武红"
    "响虽推势参希古众构房半节土投某案黑维革划敌致陈律足态护七兴派孩验责营星够章音跟志底站严巴例防族供效续"
    "施留讲型料终答紧黄绝奇察母京段依批群项故按河米围江织害斗双境客纪采举杀攻父苏密低朝友诉止细愿千值仍男"
    "钱破网热助倒育属坐帝限船脸职速刻乐否刚威毛状率甚独球般普怕弹校苦创假久错承印晚兰试股拿脑预谁益阳若哪"
    "微尼继送急血惊伤素药适波夜省初喜卫源食险待述陆习置居劳财环排福纳欢雷警获模充负云停木游龙树疑层冷洲冲"
    "射略范竟句室异激汉村哈策演简卡罪判担州静退既衣您宗积余痛检差富灵协角占配征修皮挥胜降阶审沉坚善妈刘读"
    "啊超免压银买皇养伊怀执副乱抗犯追帮宣佛岁航优怪香著田铁控税左右份穿艺背阵草脚概恶块顿敢守酒岛托央户烈"
    "洋哥索胡款靠评版宝座释景顾弟登货互付伯慢欧换闻危忙核暗姐介坏讨丽良序升监临亮露永呼味野架域沙掉括舰鱼"
    "杂误湖钟奔馆症状诊断治疗患者发热咳嗽胸痛腹泻呕吐头晕乏力血压血糖肝肾肺心脏手术感染炎症抗生素剂量服用"
)
ZH_PUNCT = ["，", "，", "，", "、", "；", "：", "（", "）", "“", "”"]
UNITS = ["mg", "g", "mL", "mmol/L", "%", "cm", "kg", "mmHg", "℃", "次/分", "岁", "天", "h", "IU"]


def _zipf_weights(n: int, s: float = 1.05) -> np.ndarray:
    w = 1.0 / np.arange(1, n + 1) ** s
    return w / w.sum()


class LanguageStream:
    """Documents of varied-vocabulary English and Chinese prose (see the comment above)."""

    def __init__(self, seed: int, stream: int, n_en: int = 60_000, n_zh: int = 40_000):
        base = np.random.default_rng([seed, 100])
        real = sorted({w.lower() for lst in EN.values() for item in lst for w in item.split() if w.isalpha()})
        forms = set()
        while len(forms) < n_en:
            k = int(base.choice([1, 1, 2, 2, 2, 3]))
            root = "".join(EN_ONSET[base.integers(len(EN_ONSET))] + EN_VOWEL[base.integers(len(EN_VOWEL))]
                           + EN_CODA[base.integers(len(EN_CODA))] for _ in range(k))
            forms.add(root + EN_SUFFIX[base.integers(len(EN_SUFFIX))])
        forms = sorted(forms)
        base.shuffle(forms)
        self.en_words = EN_FUNCTION + real + forms          # rank order: function words, real, generated
        self.en_p = _zipf_weights(len(self.en_words))
        chars = list(dict.fromkeys(ZH_COMMON))
        tail = [chr(c) for c in base.integers(0x4E00, 0x9FA5, 6000)]
        inventory = chars + [c for c in dict.fromkeys(tail) if c not in set(chars)]
        char_p = _zipf_weights(len(inventory), 1.15)
        lengths = base.choice([1, 2, 2, 2, 3, 4], n_zh)
        idx = base.choice(len(inventory), int(lengths.sum()), p=char_p)
        words, pos = [], 0
        for n in lengths.tolist():
            words.append("".join(inventory[j] for j in idx[pos:pos + n]))
            pos += n
        self.zh_words = list(dict.fromkeys(words))
        self.zh_p = _zipf_weights(len(self.zh_words))
        self.rng = np.random.default_rng([seed, 200 + stream])

    def _number(self) -> str:
        r = self.rng
        kind = r.integers(4)
        if kind == 0:
            return str(int(r.integers(0, 10 ** int(r.integers(1, 6)))))
        if kind == 1:
            return f"{r.random() * 10 ** int(r.integers(0, 4)):.{int(r.integers(1, 3))}f}"
        if kind == 2:
            return f"{int(r.integers(1, 1000))} {UNITS[int(r.integers(len(UNITS)))]}"
        return f"{int(r.integers(1990, 2030))}-{int(r.integers(1, 13)):02d}-{int(r.integers(1, 29)):02d}"

    def _en_sentence(self, n: int, words: list) -> str:
        r = self.rng
        out = []
        for i, w in enumerate(words):
            x = r.random()
            if x < 0.03:
                w = self._number()
            elif x < 0.05:
                w = w.capitalize()
            out.append(w)
            if i < n - 1 and r.random() < 0.07:
                out[-1] += "," if r.random() < 0.85 else ";"
        s = " ".join(out)
        if r.random() < 0.05:
            s += f" ({self.zh_words[int(r.integers(200))]})"
        return s[0].upper() + s[1:] + (". " if r.random() < 0.9 else "? ")

    def _zh_sentence(self, n: int, words: list) -> str:
        r = self.rng
        out = []
        for i, w in enumerate(words):
            x = r.random()
            if x < 0.03:
                w = self._number()
            elif x < 0.045:
                w = self.en_words[int(r.integers(len(EN_FUNCTION), len(EN_FUNCTION) + 3000))]
            out.append(w)
            if i < n - 1 and r.random() < 0.1:
                out.append(ZH_PUNCT[int(r.integers(len(ZH_PUNCT)))])
        return "".join(out) + ("。" if r.random() < 0.9 else "？")

    def chunk(self, n_docs: int = 2048) -> list[str]:
        r = self.rng
        lang_zh = r.random(n_docs) < 0.5
        target = doc_lengths(r, n_docs)
        docs = []
        for zh, chars in zip(lang_zh.tolist(), target.tolist()):
            words_per_char = 0.55 if zh else 0.17
            n_words = max(3, int(chars * words_per_char))
            lex, p = (self.zh_words, self.zh_p) if zh else (self.en_words, self.en_p)
            picks = r.choice(len(lex), n_words, p=p).tolist()
            sents, pos = [], 0
            while pos < n_words:
                n = max(3, int(r.lognormal(np.log(16 if zh else 18), 0.5)))
                ws = [lex[j] for j in picks[pos:pos + n]]
                sents.append(self._zh_sentence(len(ws), ws) if zh else self._en_sentence(len(ws), ws))
                if r.random() < 0.04:
                    sents.append("  " if r.random() < 0.5 else "\t")
                pos += n
            docs.append("".join(sents).strip()[:MAX_DOC_CHARS])
        return docs


def parse_size(s: str) -> int:
    m = re.fullmatch(r"\s*([\d.]+)\s*([KMGT]i?B|B)?\s*", s, re.I)
    if not m:
        raise argparse.ArgumentTypeError(f"bad size {s!r} (e.g. 100MB, 1GB, 512MiB)")
    unit = (m.group(2) or "B").upper()
    mult = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
            "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}[unit]
    return int(float(m.group(1)) * mult)


def write_half(out: str, fmt: str, target: int, shard: int, seed: int, stream: int,
               kind: str = "synthetic") -> dict:
    gen = DocStream(seed, stream) if kind == "synthetic" else LanguageStream(seed, stream)
    written, n_docs, files = 0, 0, []
    fh, in_file, part = None, 0, 0
    try:
        while written < target:
            texts = gen.chunk()
            if fmt == "jsonl" and kind != "synthetic":
                lines = [json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts]
            elif fmt == "jsonl":
                lines = ['{"text": "' + t + '"}\n' for t in texts]
            else:
                lines = [t + "\n" for t in texts]
            data = "".join(lines).encode("utf-8")
            # cut the chunk at a line end so the half and each shard stop near their sizes
            room = min(target - written, shard - in_file)
            if len(data) > room:
                cut = data.rfind(b"\n", 0, room) + 1
                cut = cut if cut > 0 else data.find(b"\n") + 1
                data = data[:cut]
            if fh is None:
                name = os.path.join(out, f"{fmt}-{part:05d}.{fmt}")
                files.append(name)
                fh = open(name, "wb")
            fh.write(data)
            written += len(data)
            in_file += len(data)
            n_docs += data.count(b"\n")
            if in_file >= shard - 64:  # full (a line rarely fits in the last few bytes)
                fh.close()
                fh, in_file, part = None, 0, part + 1
    finally:
        if fh is not None:
            fh.close()
    return {"format": fmt, "bytes": written, "documents": n_docs, "files": [os.path.basename(f) for f in files]}


def make_corpus(out: str, size: int, seed: int = 0, shard_size: int = 128 * 10**6, force: bool = False,
                kind: str = "synthetic") -> dict:
    params = {"size": size, "seed": seed, "shard_size": shard_size, "generator_version": 3}
    if kind != "synthetic":
        params.update(kind=kind, language_version=1)
    meta_path = os.path.join(out, META)  # hidden: find_files ignores it
    if not force and os.path.exists(meta_path):
        with open(meta_path) as fh:
            meta = json.load(fh)
        if meta.get("params") == params:
            return meta
    if os.path.isdir(out):
        shutil.rmtree(out)
    os.makedirs(out)
    t0 = time.time()
    halves = [write_half(out, "txt", size // 2, shard_size, seed, 0, kind),
              write_half(out, "jsonl", size - size // 2, shard_size, seed, 1, kind)]
    meta = {"params": params, "bytes": sum(h["bytes"] for h in halves),
            "documents": sum(h["documents"] for h in halves), "halves": halves,
            "seconds": round(time.time() - t0, 2)}
    with open(meta_path, "w") as fh:
        json.dump(meta, fh, indent=1)
    return meta


def data_files(corpus_dir: str) -> dict:
    """The corpus's data files by format: {"txt": [...], "jsonl": [...]} (absolute paths, sorted)."""
    names = sorted(os.listdir(corpus_dir))
    return {fmt: [os.path.join(os.path.abspath(corpus_dir), n) for n in names if n.endswith("." + fmt)]
            for fmt in ("txt", "jsonl")}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=parse_size, required=True, help="total bytes, e.g. 100MB or 1GB (decimal)")
    ap.add_argument("--out", required=True, help="output directory (created; replaced if parameters differ)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--shard-size", type=parse_size, default=128 * 10**6, help="max bytes per file (default 128MB)")
    ap.add_argument("--force", action="store_true", help="regenerate even if --out holds this corpus")
    ap.add_argument("--kind", choices=["synthetic", "language"], default="synthetic",
                    help="synthetic: template sentences (the default); language: varied-vocabulary prose")
    args = ap.parse_args(argv)
    meta = make_corpus(args.out, args.size, args.seed, args.shard_size, args.force, args.kind)
    print(json.dumps({k: meta[k] for k in ("bytes", "documents", "seconds")}), file=sys.stderr)
    print(os.path.abspath(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
